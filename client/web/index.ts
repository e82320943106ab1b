/** Landing page: create a demo room (with its stage mode) and share its links, or open a room by id. */
import type { StageMode } from '../index.js';
import { byId, copyText, createDemoRoom, errorText, notice, toast } from './ui.js';

const createForm = byId<HTMLFormElement>('create-form');
const createButton = byId<HTMLButtonElement>('create-button');
const created = byId('created');

createForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = new FormData(createForm);
  const mode = (form.get('mode') ?? 'REQUEST') as StageMode;
  const audience = form.get('audience') === 'visible' ? 'visible' : 'hidden';
  createButton.disabled = true;
  createButton.textContent = 'Creating…';
  createDemoRoom(mode, audience)
    .then((room) => {
      const hostUrl = new URL(room.hostPath, location.origin).href;
      const viewerUrl = new URL(room.viewerPath, location.origin).href;
      byId('created-id').textContent = room.roomId;
      byId<HTMLInputElement>('host-link').value = hostUrl;
      byId<HTMLInputElement>('viewer-link').value = viewerUrl;
      byId<HTMLInputElement>('speaker-link').value = new URL(room.speakerPath, location.origin).href;
      byId<HTMLAnchorElement>('open-host').href = hostUrl;
      createForm.hidden = true;
      created.hidden = false;
    })
    .catch((err: unknown) =>
      notice(byId('create-error'), 'error', `Could not create the room: ${errorText(err)}`, 'create'),
    )
    .finally(() => {
      createButton.disabled = false;
      createButton.textContent = 'Create room';
    });
});

byId('create-another').addEventListener('click', () => {
  created.hidden = true;
  createForm.hidden = false;
});

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-copy]')) {
  button.addEventListener('click', () => {
    const input = byId<HTMLInputElement>(button.dataset.copy!);
    void copyText(input.value, input).then((ok) => {
      toast(ok ? 'Link copied' : 'Select the link and copy it');
      if (ok) {
        button.textContent = 'Copied ✓';
        setTimeout(() => (button.textContent = 'Copy'), 1500);
      }
    });
  });
}

byId<HTMLFormElement>('open-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const raw = byId<HTMLInputElement>('room-input').value.trim();
  if (!raw) return;
  // Accept a pasted viewer link as well as a bare id.
  let room = raw;
  try {
    room = new URL(raw).searchParams.get('room') ?? raw;
  } catch {
    // a bare id
  }
  location.href = `/viewer.html?room=${encodeURIComponent(room)}`;
});
