/**
 * Host console: `host.html?room=ID&key=HOSTKEY[&name=Display%20Name]`.
 *
 * Live stage tiles with audio level meters, the ordered request queue (accept / deny, all at
 * once), every participant with Invite / Remove (searchable; a list of thousands renders its
 * first rows and counts the rest), the stage mode and audience switches, and the host's own
 * Join stage / Leave stage.
 *
 * Test hook (the only global): `window.__meeting` is the joined Meeting, set once joined.
 */
import {
  joinMeeting,
  type AccessRequest,
  type BatchResult,
  type Meeting,
  type AudienceVisibility,
  type StageMode,
  type StageStatus,
} from '../index.js';
import {
  MODE_HELP,
  MODE_TEXT,
  avatar,
  byId,
  clock,
  copyText,
  demoToken,
  errorText,
  formatWait,
  h,
  mayJoinDirectly,
  notice,
  params,
  setStatusBadge,
  personRow,
  toast,
  wireConnectionNotices,
  runLobby,
  codeOf,
  moreRow,
  visibleSlice,
  watchingText,
  isolate,
  endDemoRoom,
} from './ui.js';
import { DeviceProblem, LocalMedia, MediaControls, StageView, type TileSpec } from './media.js';

const roomId = params().get('room')?.trim() ?? '';
const hostKey = params().get('key')?.trim() ?? '';
const notices = byId('notices');
const modeBadge = byId('mode-badge');
const liveDot = byId('live-dot');
const selfStatus = byId('self-status');
const selfActions = byId('self-actions');
const requestsEl = byId('requests');
const peopleEl = byId('people');
const peopleSearch = byId<HTMLInputElement>('people-search');
const logEl = byId('log');
const acceptAll = byId<HTMLButtonElement>('accept-all');
const denyAll = byId<HTMLButtonElement>('deny-all');
const copyLink = byId<HTMLButtonElement>('copy-viewer-link');
const stage = new StageView(
  byId('stage-grid'),
  'The stage is empty',
  'Join the stage yourself, or invite a participant. Accepted requests show up here live.',
);

byId('room-id').textContent = roomId || '—';
// ------------------------------------------------------------------ state
const local = new LocalMedia();
// the host's own mute / camera / screen share / devices while on stage (media.ts, as the viewer page)
const controls = new MediaControls({
  local,
  onError: (w, e) => toast(`${w}: ${errorText(e)}`, 'error'),
  onChange: () => renderAll(),
});
controls.el.classList.add('card-body');
let meeting: Meeting | undefined;
let requests: AccessRequest[] = [];
/** The host pressed "Join stage": the preview shows first, "Go live" puts them on stage. */
let previewing = false;
let previewError: DeviceProblem | string = '';
const previewEl = byId('host-preview');
const previewVideo = h('video', { autoplay: true, playsinline: true, muted: true, 'data-testid': 'preview-video' });
previewVideo.muted = true;
/** People this console removed from the stage or whose invite it withdrew (for the log). */
const removedByMe = new Set<string>();
/** Requests a host declined, or the mode withdrew (so a request gone otherwise was cancelled). */
const rejected = new Set<string>();
/** Actions in flight, by key: their buttons stay disabled. */
const pending = new Set<string>();

runLobby({
  nameKey: 'stagegate.hostName',
  defaultName: 'Host',
  invalid:
    roomId && hostKey
      ? undefined
      : { text: 'This is not a complete host link (it needs a room and a host key).', back: '← Create a room' },
  idleLabel: 'Open host console',
  busyLabel: 'Opening…',
  roomId,
  identityKey: `host:${roomId}`,
  async join(name, stored) {
    const token = stored ?? (await demoToken({ roomId, name, role: 'host', hostKey })).token;
    const m = await joinMeeting({ url: location.origin, token, roomId, tracks: (allowed) => local.tracksFor(allowed) });
    try {
      requests = await m.stage.getAccessRequests();
    } catch (err) {
      void m.leave();
      throw err;
    }
    return (meeting = m);
  },
  failure: (err) =>
    codeOf(err) === 'FORBIDDEN'
      ? 'This host link is not valid for this room.'
      : codeOf(err) === 'NOT_FOUND'
        ? 'This webinar does not exist or has ended.'
        : `Could not open the console: ${errorText(err)}`,
  joined(m) {
    stage.attach(m);
    controls.attach(m);
    copyLink.hidden = false;
    document.title = `Host · ${roomId} · Stagegate`;
    wire(m);
    const others = m.participants.size;
    log(`You opened the console (${others} other participant${others === 1 ? '' : 's'} here).`);
    renderAll();
  },
});

function nameOf(userId: string | undefined): string {
  if (!userId || !meeting) return 'someone';
  if (userId === meeting.self.id) return 'You';
  const name = meeting.participants.get(userId)?.name ?? requests.find((r) => r.userId === userId)?.name;
  return name ? isolate(name) : 'someone';
}

/** Arrivals and departures in one burst become one line ("Ada and 41 others joined."). */
const burst = new Map<string, string[]>();
function logSoon(text: string, kind: string): void {
  const lines = burst.get(kind);
  if (lines) return void lines.push(text);
  burst.set(kind, [text]);
  setTimeout(() => {
    const all = burst.get(kind) ?? [];
    burst.delete(kind);
    log(
      all.length === 1
        ? all[0]!
        : `${all[0]!.replace(/ (joined|left the webinar)\.$/, '')} and ${all.length - 1} other${all.length === 2 ? '' : 's'} ${kind}.`,
    );
  }, 250);
}

let renderTimer: ReturnType<typeof setTimeout> | undefined;
/** Renders once for a burst of notifications (a `batch` frame, thousands of arrivals). */
function renderSoon(): void {
  renderTimer ??= setTimeout(() => {
    renderTimer = undefined;
    renderAll();
  }, 50);
}

/** A short soft two-note chime for a new request (WebAudio; silent until the page had a click). */
function chime(): void {
  try {
    const ctx = new AudioContext();
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0.0001, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.08, ctx.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.45);
    gain.connect(ctx.destination);
    for (const [i, f] of [660, 880].entries()) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start(ctx.currentTime + i * 0.12);
      osc.stop(ctx.currentTime + 0.45);
    }
    setTimeout(() => void ctx.close(), 800);
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes ?? 0) + 1);
  } catch {
    // no audio output: the title badge and the toast still say it
  }
}

function log(text: string): void {
  logEl.prepend(h('li', {}, h('time', {}, clock()), h('span', {}, text)));
  while (logEl.children.length > 60) logEl.lastElementChild?.remove();
}

// ------------------------------------------------------------------ events
function wire(m: Meeting): void {
  const s = m.stage;
  s.on('stageAccessRequestUpdate', ({ requests: list }) => {
    requests = list;
    renderRequests();
    renderPeople();
  });
  s.on('newStageRequest', ({ request }) => {
    chime();
    log(`${isolate(request.name)} asked to join the stage.`);
    toast(`${isolate(request.name)} asks to join the stage`);
  });
  s.on('stageRequestApproved', ({ userId, by, invited }) => {
    const who = nameOf(userId);
    // a switch to "Everyone on stage" approves every request: said so, not "You accepted Carol"
    // (the mode update comes in the same burst, so it is read once the burst is through)
    setTimeout(() =>
      log(
        invited
          ? `${nameOf(by)} invited ${who} to the stage.`
          : m.stage.mode === 'OPEN'
            ? `${who} may join the stage now (everyone on stage).`
            : `${nameOf(by)} accepted ${who}.`,
      ),
    );
  });
  s.on('stageRequestRejected', ({ userId, by, reason }) => {
    rejected.add(userId);
    log(
      reason === 'mode'
        ? `${nameOf(userId)}'s request was withdrawn (invite only).`
        : `${by ? nameOf(by) : 'A host'} declined ${nameOf(userId)}.`,
    );
  });
  s.on('peerStageStatusUpdate', ({ userId, old, new: now }) => {
    const mine = removedByMe.delete(userId);
    if (now === 'ON_STAGE') log(`${nameOf(userId)} is live on stage.`);
    else if (old === 'ON_STAGE')
      log(mine ? `You removed ${nameOf(userId)} from the stage.` : `${nameOf(userId)} left the stage.`);
    else if (old === 'ACCEPTED_TO_JOIN_STAGE' && now === 'OFF_STAGE')
      log(mine ? `You withdrew ${nameOf(userId)}'s invitation.` : `${nameOf(userId)} is no longer invited.`);
    else if (old === 'REQUESTED_TO_JOIN_STAGE' && now === 'OFF_STAGE') {
      const who = nameOf(userId);
      // a decline or a mode switch was logged already (its notice may come right after)
      setTimeout(() => {
        if (!rejected.delete(userId)) log(`${who} cancelled their request.`);
      });
    }
    renderAll();
  });
  s.on('stageStatusUpdate', ({ old, new: now }) => {
    if (old === 'ON_STAGE' && now !== 'ON_STAGE') local.stop();
    if (now === 'ON_STAGE') previewing = false;
    if (now === 'ON_STAGE') log('You are live on stage.');
    renderAll();
  });
  s.on('removedFromStage', ({ by }) => notice(notices, 'warn', `Removed from stage by ${nameOf(by)}`, 'stage'));
  s.on('stageModeUpdate', ({ mode, by }) => {
    log(`${nameOf(by)} set the stage to “${MODE_TEXT[mode]}”.`);
    renderAll();
  });
  // thousands may join or leave in a minute: one log line and one render per burst
  m.on('participantJoined', ({ participant }) => {
    logSoon(`${isolate(participant.name)} joined.`, 'joined');
    renderSoon();
  });
  m.on('participantLeft', ({ participant }) => {
    logSoon(`${isolate(participant.name)} left the webinar.`, 'left the webinar');
    renderSoon();
  });
  m.on('roomSettingsUpdate', ({ settings, by }) => {
    log(
      settings.audience === 'hidden'
        ? `${nameOf(by)} made the audience private.`
        : `${nameOf(by)} let everyone see everyone.`,
    );
    renderAll();
  });
  m.on('participantUpdated', ({ participant, old }) => {
    if (old.name !== participant.name) log(`${isolate(old.name)} is now ${isolate(participant.name)}.`);
    renderAll();
  });
  m.on('audienceCount', () => renderHeader());
  peopleSearch.addEventListener('input', () => renderPeople());
  byId('audience-switch').addEventListener('click', (ev) => {
    const target = (ev.target as HTMLElement).closest<HTMLElement>('[data-audience]');
    const audience = target?.dataset.audience as AudienceVisibility | undefined;
    if (!audience || audience === m.settings.audience) return;
    void act('audience', 'Could not change who sees whom', () => m.stage.setSettings({ audience }));
  });
  m.on('trackAdded', () => renderStage());
  m.on('trackRemoved', () => renderStage());
  wireConnectionNotices(
    m,
    notices,
    {
      left: 'You closed the console.',
      replaced: 'The console was opened in another tab, so this one was disconnected.',
      again: 'Reconnect',
    },
    renderAll,
    () => {
      local.stop();
      stage.clear();
    },
  );
  byId('mode-switch').addEventListener('click', (ev) => {
    const mode = (ev.target as HTMLElement).closest<HTMLElement>('[data-mode]')?.dataset.mode as StageMode | undefined;
    if (!mode || mode === m.stage.mode) return;
    const n = requests.length;
    if (n === 0 || mode === 'REQUEST') {
      void act('mode', 'Could not change the mode', () => m.stage.setMode(mode));
      return;
    }
    // the consequence for the people waiting, spelled out before it happens
    const count = n === 1 ? '1 pending request' : `${n} pending requests`;
    const what =
      mode === 'INVITE'
        ? `The ${count} will be declined; each viewer is told their request was withdrawn.`
        : `The ${count} will be approved; each viewer is told they may join the stage.`;
    const box = byId('mode-confirm');
    const close = () => {
      box.hidden = true;
      box.replaceChildren();
    };
    box.replaceChildren(
      h('p', {}, h('strong', {}, `Switch to “${MODE_TEXT[mode]}”? `), what),
      h(
        'div',
        { class: 'btn-row' },
        h(
          'button',
          {
            class: mode === 'INVITE' ? 'small danger' : 'small success',
            'data-testid': 'confirm-mode',
            onclick: () => {
              close();
              void act('mode', 'Could not change the mode', () => m.stage.setMode(mode));
            },
          },
          mode === 'INVITE' ? `Switch and decline ${n}` : `Switch and approve ${n}`,
        ),
        h(
          'button',
          { class: 'small secondary', 'data-testid': 'cancel-mode', onclick: close },
          `Keep “${MODE_TEXT[m.stage.mode]}”`,
        ),
      ),
    );
    box.hidden = false;
  });
  acceptAll.addEventListener('click', () => {
    const ids = requests.map((r) => r.userId);
    if (ids.length) void act('all', 'Could not accept', () => batch(m.stage.grantAccess(ids)));
  });
  denyAll.addEventListener('click', () => {
    const ids = requests.map((r) => r.userId);
    if (ids.length) void act('all', 'Could not deny', () => batch(m.stage.denyAccess(ids)));
  });
  const endButton = byId<HTMLButtonElement>('end-webinar');
  endButton.hidden = false;
  endButton.addEventListener('click', () => {
    // said once, plainly: everyone is disconnected and the links stop working
    const box = notice(
      notices,
      'warn',
      'End the webinar for everyone? Everyone is disconnected, and the host and viewer links stop working.',
      'end',
    );
    box.dataset.testid = 'end-confirm';
    box.insertBefore(
      h(
        'button',
        {
          class: 'small danger',
          'data-testid': 'confirm-end',
          onclick: () =>
            void act('end', 'Could not end the webinar', async () => {
              box.remove();
              await endDemoRoom(roomId, hostKey);
            }),
        },
        'End webinar for everyone',
      ),
      box.lastChild,
    );
  });
  copyLink.addEventListener('click', () => {
    const link = `${location.origin}/viewer.html?room=${encodeURIComponent(roomId)}`;
    void copyText(link).then((ok) => toast(ok ? 'Viewer link copied' : link));
  });
  // Waiting times tick every second without re-rendering the queue.
  setInterval(() => {
    for (const el of requestsEl.querySelectorAll<HTMLElement>('[data-since]')) {
      el.textContent = `waiting ${formatWait(Date.now() - Number(el.dataset.since))}`;
    }
  }, 1000);
}

/** A batch action's per-user failures become one toast. */
async function batch(result: Promise<BatchResult>): Promise<void> {
  const failed = Object.entries(await result).filter(([, r]) => !r.ok);
  if (failed.length) {
    toast(failed.map(([id, r]) => `${nameOf(id)}: ${r.ok ? '' : r.message}`).join(' · '), 'error');
  }
}

async function act(key: string, what: string, action: () => Promise<unknown>): Promise<void> {
  if (pending.has(key)) return;
  pending.add(key);
  renderAll();
  try {
    await action();
  } catch (err) {
    toast(`${what}: ${errorText(err)}`, 'error');
  } finally {
    pending.delete(key);
    renderAll();
  }
}

// ------------------------------------------------------------------ rendering
function renderAll(): void {
  if (!meeting) return;
  renderHeader();
  renderSelf();
  renderPreview();
  renderStage();
  renderRequests();
  renderPeople();
}

function renderHeader(): void {
  const m = meeting!;
  const mode = m.stage.mode;
  modeBadge.hidden = false;
  modeBadge.textContent = MODE_TEXT[mode];
  modeBadge.dataset.mode = mode;
  for (const b of byId('mode-switch').querySelectorAll<HTMLButtonElement>('[data-mode]')) {
    b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
    b.disabled = pending.has('mode') || m.connectionState !== 'connected';
  }
  byId('mode-help').textContent = MODE_HELP[mode];
  const audience = m.settings.audience;
  for (const b of byId('audience-switch').querySelectorAll<HTMLButtonElement>('[data-audience]')) {
    b.setAttribute('aria-pressed', String(b.dataset.audience === audience));
    b.disabled = pending.has('audience') || m.connectionState !== 'connected';
  }
  byId('audience-help').textContent =
    audience === 'hidden'
      ? `${watchingText(m.audienceCount)}. Only hosts see who they are; viewers see the stage and this number.`
      : `${watchingText(m.audienceCount)}. Everyone sees everyone, as in a meeting.`;
  const live = m.stage.status === 'ON_STAGE' || [...m.participants.values()].some((p) => p.stageStatus === 'ON_STAGE');
  liveDot.classList.toggle('idle', !live);
  liveDot.textContent = live ? 'Live' : 'Off air';
}

function renderSelf(): void {
  const m = meeting!;
  const status = m.stage.status;
  if (status === 'ACCEPTED_TO_JOIN_STAGE') setStatusBadge(selfStatus, status, 'You are off stage', 'OFF_STAGE');
  else if (status === 'ON_STAGE') setStatusBadge(selfStatus, status, 'You are live');
  else setStatusBadge(selfStatus, status);
  const off = m.connectionState !== 'connected' || pending.has('self');
  controls.el.hidden = status !== 'ON_STAGE';
  if (status === 'ON_STAGE') {
    controls.update('stage');
    if (!controls.el.isConnected) previewEl.after(controls.el);
    selfActions.replaceChildren(
      h(
        'button',
        {
          class: 'small ghost-danger',
          'data-testid': 'host-leave-stage',
          disabled: off,
          onclick: () => void act('self', 'Could not leave the stage', () => m.stage.leave()),
        },
        'Leave stage',
      ),
    );
  } else {
    selfActions.replaceChildren(
      h(
        'button',
        {
          class: 'small success',
          'data-testid': 'host-join-stage',
          disabled: off || status !== 'ACCEPTED_TO_JOIN_STAGE',
          onclick: () => void openPreview(),
        },
        previewing ? 'Preview open' : 'Join stage',
      ),
    );
  }
}

async function openPreview(): Promise<void> {
  previewing = true;
  previewError = '';
  renderAll();
  try {
    await local.open();
  } catch (err) {
    previewError = err instanceof DeviceProblem ? err : errorText(err);
  }
  renderAll();
}

function closePreview(): void {
  previewing = false;
  previewError = '';
  if (meeting?.stage.status !== 'ON_STAGE') local.stop();
  renderAll();
}

/** The host's own preview before going live: video, what opened, blocked devices with Retry. */
function renderPreview(): void {
  const m = meeting!;
  const show = previewing && m.stage.status !== 'ON_STAGE';
  previewEl.hidden = !show;
  if (!show) return void previewEl.replaceChildren();
  if (previewVideo.srcObject !== (local.stream ?? null)) previewVideo.srcObject = local.stream ?? null;
  const { audio, video } = local.kinds;
  const tag = !local.live
    ? previewError
      ? 'Camera unavailable'
      : 'Starting camera…'
    : audio && video
      ? 'Camera preview'
      : video
        ? 'Camera only (no microphone)'
        : 'Microphone only (no camera)';
  const parts: Node[] = [
    h('h3', {}, 'Check how you look before you go live'),
    h(
      'div',
      { class: 'preview' },
      previewVideo,
      h('span', { class: 'preview-tag', 'data-testid': 'preview-tag' }, tag),
    ),
  ];
  if (previewError instanceof DeviceProblem) {
    parts.push(
      h(
        'div',
        { class: 'notice error', role: 'alert', 'data-testid': 'devices-blocked', 'data-problem': previewError.kind },
        h('div', { class: 'grow' }, h('strong', {}, previewError.title), ' ', previewError.fix),
        h('button', { class: 'small', 'data-testid': 'retry-devices', onclick: () => void openPreview() }, 'Retry'),
      ),
    );
  } else if (previewError) parts.push(h('p', {}, previewError));
  const off = m.connectionState !== 'connected' || pending.has('self');
  parts.push(
    h(
      'div',
      { class: 'btn-row' },
      h(
        'button',
        {
          class: 'success',
          'data-testid': 'host-go-live',
          disabled: off || !local.live,
          onclick: () => void act('self', 'Could not join the stage', () => m.stage.join()),
        },
        pending.has('self') ? 'Going live…' : 'Go live',
      ),
      h(
        'button',
        { class: 'secondary', 'data-testid': 'host-cancel-preview', disabled: off, onclick: closePreview },
        'Cancel',
      ),
    ),
  );
  previewEl.replaceChildren(...parts);
}

function renderStage(): void {
  const m = meeting!;
  const specs: TileSpec[] = [];
  if (m.connected) {
    if (m.stage.status === 'ON_STAGE') {
      const mine = m.localTracks;
      specs.push({ id: m.self.id, name: m.self.name, self: true, video: mine.video, audio: mine.audio });
    }
    for (const p of m.participants.values()) {
      if (p.stageStatus !== 'ON_STAGE') continue;
      specs.push({
        id: p.id,
        name: p.name,
        video: p.tracks.video,
        audio: p.tracks.audio,
        onRemove: m.self.preset.kickParticipant
          ? () =>
              void act(`p:${p.id}`, `Could not remove ${isolate(p.name)}`, () => {
                removedByMe.add(p.id);
                return batch(m.stage.kick([p.id]));
              })
          : undefined,
      });
    }
  }
  stage.render(specs);
  byId('stage-count').textContent = String(specs.length);
}

/** Requests already on screen: only new ones slide in. */
let shownRequests = new Set<string>();

function renderRequests(): void {
  const m = meeting!;
  byId('requests-card').classList.toggle('attention', requests.length > 0);
  const count = byId('request-count');
  count.textContent = String(requests.length);
  // a badge in the tab title: a host in another tab sees people waiting
  document.title = `${requests.length ? `(${requests.length}) ` : ''}Host · ${roomId} · Stagegate`;
  count.classList.toggle('hot', requests.length > 0);
  const off = m.connectionState !== 'connected' || pending.has('all');
  acceptAll.disabled = off || requests.length === 0;
  denyAll.disabled = off || requests.length === 0;
  if (requests.length === 0) {
    requestsEl.replaceChildren(
      h(
        'li',
        { class: 'empty' },
        m.stage.mode === 'INVITE'
          ? 'Requests are off: the stage is invite only.'
          : 'No one is waiting. Requests appear here, oldest first.',
      ),
    );
    shownRequests = new Set();
    return;
  }
  requestsEl.replaceChildren(
    ...requests.map((r, i) => {
      const busy = off || pending.has(`p:${r.userId}`);
      return h(
        'li',
        {
          class: shownRequests.has(r.userId) ? 'request-item' : 'request-item fresh',
          'data-testid': 'request-item',
          'data-user-id': r.userId,
        },
        h('span', { class: 'queue-pos' }, String(i + 1)),
        avatar(r.userId, r.name),
        h(
          'div',
          { class: 'who' },
          h('span', { class: 'nm', dir: 'auto', title: r.name }, r.name),
          h(
            'span',
            { class: 'sub', 'data-since': String(r.requestedAt) },
            `waiting ${formatWait(Date.now() - r.requestedAt)}`,
          ),
        ),
        h(
          'div',
          { class: 'acts' },
          h(
            'button',
            {
              class: 'small success',
              'data-testid': 'accept-request',
              disabled: busy,
              onclick: () =>
                void act(`p:${r.userId}`, `Could not accept ${isolate(r.name)}`, () =>
                  batch(m.stage.grantAccess([r.userId])),
                ),
            },
            'Accept',
          ),
          h(
            'button',
            {
              class: 'small secondary',
              'data-testid': 'deny-request',
              disabled: busy,
              onclick: () =>
                void act(`p:${r.userId}`, `Could not deny ${isolate(r.name)}`, () =>
                  batch(m.stage.denyAccess([r.userId])),
                ),
            },
            'Deny',
          ),
        ),
      );
    }),
  );
  shownRequests = new Set(requests.map((r) => r.userId));
}

function renderPeople(): void {
  const m = meeting!;
  const mode = m.stage.mode;
  const rank = (s: StageStatus) =>
    s === 'ON_STAGE' ? 0 : s === 'REQUESTED_TO_JOIN_STAGE' ? 1 : s === 'ACCEPTED_TO_JOIN_STAGE' ? 2 : 3;
  const sorted = [...m.participants.values()].sort(
    (a, b) => rank(a.stageStatus) - rank(b.stageStatus) || a.name.localeCompare(b.name),
  );
  // a search box and the first rows only: the audience may be thousands
  const { shown: others, matches } = visibleSlice(sorted, peopleSearch.value);
  const items: HTMLLIElement[] = [
    personRow({
      id: m.self.id,
      name: m.self.name,
      presetName: m.self.preset.name,
      status: m.stage.status,
      mode,
      self: true,
      testid: 'participant-item',
    }),
  ];
  for (const p of others) {
    const busy = m.connectionState !== 'connected' || pending.has(`p:${p.id}`);
    const actions: HTMLElement[] = [];
    const btn = (label: string, testid: string, cls: string, what: string, run: () => Promise<BatchResult>) =>
      h(
        'button',
        {
          class: `small ${cls}`,
          'data-testid': testid,
          disabled: busy,
          onclick: () => void act(`p:${p.id}`, what, () => batch(run())),
        },
        label,
      );
    let note: string | undefined;
    switch (p.stageStatus) {
      case 'ON_STAGE':
        if (m.self.preset.kickParticipant) {
          actions.push(
            btn('Remove from stage', 'remove-button', 'ghost-danger', `Could not remove ${isolate(p.name)}`, () => {
              removedByMe.add(p.id);
              return m.stage.kick([p.id]);
            }),
          );
        }
        break;
      case 'REQUESTED_TO_JOIN_STAGE':
        // Accept and Deny live in the Requests card only (once on the page)
        note = 'asked to join: see Requests';
        break;
      case 'ACCEPTED_TO_JOIN_STAGE':
        if (!mayJoinDirectly(p.presetName, mode)) {
          note = 'deciding whether to join';
          if (m.self.preset.kickParticipant) {
            actions.push(
              btn('Withdraw invite', 'withdraw-button', 'secondary', `Could not withdraw ${isolate(p.name)}`, () => {
                removedByMe.add(p.id);
                return m.stage.kick([p.id]);
              }),
            );
          }
        }
        break;
      case 'OFF_STAGE':
        actions.push(
          btn('Invite to stage', 'invite-button', 'secondary', `Could not invite ${isolate(p.name)}`, () =>
            m.stage.grantAccess([p.id]),
          ),
        );
        break;
    }
    items.push(
      personRow({
        id: p.id,
        name: p.name,
        presetName: p.presetName,
        status: p.stageStatus,
        mode,
        note,
        testid: 'participant-item',
        actions,
      }),
    );
  }
  const more = moreRow(matches - others.length, 'people-more');
  if (more) items.push(more);
  if (matches === 0 && peopleSearch.value.trim()) {
    items.push(h('li', { class: 'empty', 'data-testid': 'people-none' }, 'No participant matches your search.'));
  }
  peopleEl.replaceChildren(...items);
  byId('people-count').textContent = String(sorted.length + 1);
}
