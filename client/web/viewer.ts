/**
 * Viewer page: `viewer.html?room=ID[&name=Display%20Name]`.
 *
 * Watches everyone on stage; asks to join (REQUEST mode), previews the camera once accepted or
 * invited, joins / declines / leaves the stage, and says clearly when a request was denied or
 * the host removed them.
 *
 * Test hook (the only global): `window.__meeting` is the joined Meeting, set once joined.
 */
import { joinMeeting, type Meeting, type StageStatus } from '../index.js';
import {
  MODE_TEXT,
  byId,
  clearNotice,
  demoToken,
  errorText,
  formatWait,
  h,
  notice,
  params,
  setStatusBadge,
  toast,
  personRow,
  wireConnectionNotices,
  runLobby,
  codeOf,
  moreRow,
  visibleSlice,
  watchingText,
  isolate,
} from './ui.js';
import { DeviceProblem, LocalMedia, MediaControls, StageView, type TileSpec } from './media.js';

const roomId = params().get('room')?.trim() ?? '';
const notices = byId('notices');
const selfPanel = byId('self-panel');
const statusEl = byId('stage-status');
const modeBadge = byId('mode-badge');
const liveDot = byId('live-dot');
const people = byId('people');
const stage = new StageView(
  byId('stage-grid'),
  'Nobody is on stage yet',
  'The webinar will appear here as soon as a speaker goes live.',
);

byId('room-id').textContent = roomId || '—';
// ------------------------------------------------------------------ state
const local = new LocalMedia();
let meeting: Meeting | undefined;
/** A host accepted our request or invited us (since we were last off stage). */
let granted: { by: string; invited: boolean } | undefined;
/** In OPEN mode the viewer asked to see their camera before joining. */
let previewWanted = false;
let requestedAt = 0;
let previousStatus: StageStatus = 'OFF_STAGE';
let busy = false;
/** Why the camera/microphone did not open (a DeviceProblem gets the blocked panel with Retry). */
let previewError: DeviceProblem | string = '';
/** COOLING_DOWN: epoch ms when asking again is allowed. */
let cooldownUntil = 0;
/** The server said our slot ends soon (`stageSlotEnding`), for the slot currently running. */
let slotEnding = false;
const controls = new MediaControls({
  local,
  onError: (what, err) => toast(`${what}: ${refusalText(err)}`, 'error'),
  onChange: () => renderAll(),
});
const previewVideo = h('video', { autoplay: true, playsinline: true, muted: true, 'data-testid': 'preview-video' });
previewVideo.muted = true;

runLobby({
  nameKey: 'stagegate.name',
  defaultName: '',
  invalid: roomId
    ? undefined
    : {
        text: 'This link has no room. Ask the host for the viewer link, or create a room.',
        back: '← Back to Stagegate',
      },
  idleLabel: 'Join as viewer',
  busyLabel: 'Joining…',
  roomId,
  identityKey: `viewer:${roomId}`,
  async join(name, stored) {
    const token = stored ?? (await demoToken({ roomId, name, role: 'viewer' })).token;
    // The page owns the camera: the preview's tracks are the ones published on stage.
    return (meeting = await joinMeeting({
      url: location.origin,
      token,
      roomId,
      tracks: (allowed) => local.tracksFor(allowed),
      // the open preview's camera: its sender is negotiated while accepted, so going live is quick
      previewTracks: () => ({ video: local.track('video') }),
    }));
  },
  failure: (err) =>
    codeOf(err) === 'NOT_FOUND'
      ? 'This webinar does not exist or has ended.'
      : codeOf(err) === 'BANNED'
        ? BANNED_TEXT
        : `Could not join: ${errorText(err)}`,
  joined(m) {
    stage.attach(m);
    controls.attach(m);
    document.title = `Webinar ${roomId} · Stagegate`;
    wire(m);
    renderAll();
  },
});

const BANNED_TEXT = 'The host removed you from this webinar. You cannot join it again.';

/** m:ss */
function mmss(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Seconds, rounded up (a countdown never shows 0 while it still runs). */
function seconds(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000));
}

/** Why the server refused, in words a viewer understands. */
function refusalText(err: unknown): string {
  switch (codeOf(err)) {
    case 'STAGE_FULL':
      return 'The stage is full. Wait until a speaker leaves, then press Join stage again.';
    case 'COOLING_DOWN':
      return `You can ask again in ${seconds(retryAfter(err))} s.`;
    case 'BANNED':
      return BANNED_TEXT;
    case 'FORBIDDEN':
      return /muted/.test(err instanceof Error ? err.message : '')
        ? 'The host muted you: ask to unmute first.'
        : errorText(err);
    default:
      return errorText(err);
  }
}

function retryAfter(err: unknown): number {
  const e = err as { retryAfterMs?: unknown; details?: { retryAfterMs?: unknown } };
  const ms = Number(e.retryAfterMs ?? e.details?.retryAfterMs);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** "the host …" at the start of a sentence. */
function capitalize(text: string): string {
  return text.charAt(0).toLocaleUpperCase() + text.slice(1);
}

function nameOf(userId: string | undefined): string {
  if (!userId || !meeting) return 'the host';
  if (userId === meeting.self.id) return 'you';
  const name = meeting.participants.get(userId)?.name;
  return name ? isolate(name) : 'the host';
}

// ------------------------------------------------------------------ events
function wire(m: Meeting): void {
  const s = m.stage;
  s.on('stageStatusUpdate', ({ old, new: now }) => {
    if (now === 'OFF_STAGE' || now === 'REQUESTED_TO_JOIN_STAGE' || (old === 'ON_STAGE' && now !== 'ON_STAGE')) {
      // Off stage (left, removed, declined, denied): the camera goes off at once.
      local.stop();
      granted = undefined;
      previewWanted = false;
      previewError = '';
    }
    if (now === 'REQUESTED_TO_JOIN_STAGE') {
      requestedAt = Date.now();
      clearNotice(notices, 'stage'); // a "declined" from before is stale now
    }
    previousStatus = old;
    if (now === 'ON_STAGE') clearNotice(notices, 'stage');
    if (now !== 'ON_STAGE') slotEnding = false;
    renderAll();
  });
  s.on('stageModeUpdate', ({ mode }) => {
    // A notice about the previous mode is stale now.
    notices.querySelector('[data-reason="mode"]')?.remove();
    clearNotice(notices, 'mode');
    if (mode === 'INVITE' && m.stage.status === 'OFF_STAGE' && !notices.querySelector('[data-notice="stage"]')) {
      notice(notices, 'info', 'The host made the stage invite only.', 'mode');
    }
    renderAll();
  });
  s.on('stageAccessRequestAccepted', ({ by, invited }) => {
    granted = { by, invited };
    // The self panel says it (with the camera preview): no banner on top of it.
    clearNotice(notices, 'stage');
    // They asked, so the camera may start; an invitee chooses first (no camera before they agree).
    if (!invited) void startPreview();
    renderAll();
  });
  s.on('stageRequestRejected', ({ userId, by, reason }) => {
    if (userId !== m.self.id) return;
    clearNotice(notices, 'mode');
    const el = notice(
      notices,
      'warn',
      reason === 'mode'
        ? 'The host made the stage invite only, so your request was withdrawn.'
        : `${capitalize(nameOf(by))} declined your request to join the stage. You can ask again later.`,
      'stage',
    );
    el.dataset.reason = reason;
    renderAll();
  });
  s.on('removedFromStage', ({ by }) => {
    // before or after the status update: what they were when it happened
    const was = m.stage.status === 'OFF_STAGE' ? previousStatus : m.stage.status;
    if (by === '@auto' && was === 'ACCEPTED_TO_JOIN_STAGE') {
      notice(notices, 'warn', 'Your place on stage lapsed because you did not join in time.', 'stage').dataset.reason =
        'lapsed';
    } else if (by === '@auto') {
      // the slot ended (STAGE.md Part 2: the kick transition by @auto)
      notice(notices, 'info', 'Your turn on stage is over. Thank you for speaking!', 'stage').dataset.reason =
        'slot-ended';
    } else if (was === 'ACCEPTED_TO_JOIN_STAGE') {
      notice(notices, 'warn', `${nameOf(by)} withdrew your invitation to the stage.`, 'stage').dataset.reason =
        'withdrawn';
    } else notice(notices, 'error', `Removed from stage by ${nameOf(by)}`, 'stage').dataset.reason = 'removed';
    renderAll();
  });
  s.on('peerStageStatusUpdate', () => renderAll());
  s.on('stageRequestPosition', () => renderAll());
  s.on('stageSlotUpdate', ({ userId }) => {
    if (userId === m.self.id) slotEnding = false; // a new or extended turn
    renderAll();
  });
  s.on('stageSlotEnding', ({ userId }) => {
    if (userId !== m.self.id) return;
    slotEnding = true;
    renderAll();
  });
  m.on('participantJoined', () => renderAll());
  m.on('audienceCount', () => renderAll());
  m.on('roomSettingsUpdate', () => renderAll());
  m.on('participantLeft', ({ participant }) => {
    // The last host gone (tab closed, connection lost past the grace period): say so.
    if (participant.presetName === 'host' && !hostHere(m)) {
      notice(notices, 'warn', 'The host left. Waiting for them to come back…', 'host');
    }
    renderAll();
  });
  m.on('participantJoined', ({ participant }) => {
    if (participant.presetName === 'host') clearNotice(notices, 'host');
  });
  m.on('participantUpdated', () => renderAll());
  m.on('trackAdded', () => renderAll());
  m.on('trackRemoved', () => renderAll());
  m.on('producerClosedByServer', () => renderAll());
  wireConnectionNotices(
    m,
    notices,
    {
      left: 'You left the webinar.',
      replaced: 'You joined this webinar from another tab, so this one was disconnected.',
      again: 'Rejoin',
    },
    renderAll,
    () => {
      local.stop();
      stage.clear();
    },
  );
  setInterval(tick, 1000);
}

/** Once a second: the waiting time, the cool-down and the slot countdowns. */
function tick(): void {
  const m = meeting;
  if (!m) return;
  const now = Date.now();
  const wait = selfPanel.querySelector<HTMLElement>('[data-wait]');
  if (wait && requestedAt) wait.textContent = formatWait(now - requestedAt);
  const cool = selfPanel.querySelector<HTMLElement>('[data-cooldown]');
  if (cool) {
    if (now >= cooldownUntil)
      renderAll(); // the Ask button comes back
    else cool.textContent = cooldownText(now);
  }
  const slot = selfPanel.querySelector<HTMLElement>('[data-slot]');
  const endsAt = m.stage.slotEndsAt;
  if (slot && endsAt) {
    const warn = slotEnding || endsAt - now <= SLOT_WARNING_MS;
    if (warn !== (slot.dataset.warn === 'true')) renderAll();
    else slot.querySelector('[data-slot-left]')!.textContent = mmss(endsAt - now);
  }
}

/** When the page warns even without `stageSlotEnding` (as the server: at most 30 s before). */
const SLOT_WARNING_MS = 30_000;

function cooldownText(now = Date.now()): string {
  return `You can ask again in ${seconds(cooldownUntil - now)} s.`;
}

function hostHere(m: Meeting): boolean {
  return [...m.participants.values()].some((p) => p.presetName === 'host');
}

async function startPreview(): Promise<void> {
  if (!meeting) return;
  previewError = '';
  try {
    const { media } = meeting.self.preset;
    await local.open({ audio: media.audio === 'ALLOWED', video: media.video === 'ALLOWED' });
    meeting?.previewChanged();
  } catch (err) {
    previewError = err instanceof DeviceProblem ? err : errorText(err);
  }
  renderAll();
}

/**
 * Opens the devices before going on stage: a participant whose camera and microphone cannot
 * start stays off stage (the host never sees them live) and gets the blocked panel.
 */
async function joinStage(m: Meeting): Promise<void> {
  if (!local.live) {
    previewWanted = true;
    await startPreview();
    if (!local.live) return;
  }
  await m.stage.join();
}

function devicesPanel(problem: DeviceProblem): HTMLElement {
  return h(
    'div',
    { class: 'notice error blocked', role: 'alert', 'data-testid': 'devices-blocked', 'data-problem': problem.kind },
    h('div', { class: 'grow' }, h('strong', {}, problem.title), ' ', problem.fix),
    h('button', { class: 'small', 'data-testid': 'retry-devices', onclick: () => void startPreview() }, 'Retry'),
  );
}

/** What the preview shows: "Camera preview", "Microphone only (no camera)", … */
function previewTag(): string {
  if (!local.live) return previewError ? 'Camera unavailable' : 'Starting camera…';
  const { audio, video } = local.kinds;
  return audio && video ? 'Camera preview' : video ? 'Camera only (no microphone)' : 'Microphone only (no camera)';
}

async function act(what: string, action: () => Promise<unknown>): Promise<void> {
  if (busy) return;
  busy = true;
  renderSelf();
  try {
    await action();
  } catch (err) {
    const code = codeOf(err);
    if (code === 'COOLING_DOWN') {
      cooldownUntil = Date.now() + retryAfter(err);
    } else if (code === 'STAGE_FULL') {
      notice(notices, 'warn', refusalText(err), 'stage').dataset.reason = 'full';
    } else toast(`${what}: ${refusalText(err)}`, 'error');
  } finally {
    busy = false;
    renderAll();
  }
}

// ------------------------------------------------------------------ rendering
function renderAll(): void {
  if (!meeting) return;
  renderHeader();
  renderSelf();
  renderStage();
  renderPeople();
}

function renderHeader(): void {
  const m = meeting!;
  modeBadge.hidden = false;
  modeBadge.textContent = MODE_TEXT[m.stage.mode];
  modeBadge.dataset.mode = m.stage.mode;
  const live = m.stage.status === 'ON_STAGE' || [...m.participants.values()].some((p) => p.stageStatus === 'ON_STAGE');
  liveDot.classList.toggle('idle', !live);
  liveDot.textContent = live ? 'Live' : 'Off air';
}

function button(label: string, testid: string, onclick: () => void, cls = ''): HTMLButtonElement {
  return h(
    'button',
    { class: cls, 'data-testid': testid, disabled: busy || meeting?.connectionState !== 'connected', onclick },
    label,
  );
}

function renderSelf(): void {
  const m = meeting!;
  const status: StageStatus = m.stage.status;
  const mode = m.stage.mode;
  setStatusBadge(statusEl, status);
  const parts: Node[] = [];
  if (!m.connected) {
    parts.push(h('p', {}, 'You are not connected to this webinar any more.'));
  } else if (status === 'OFF_STAGE') {
    if (mode === 'INVITE') {
      parts.push(
        h(
          'p',
          { 'data-testid': 'invite-only-note' },
          h('strong', {}, 'Invite only. '),
          'The host brings people on stage by invitation; you will be asked here if you are invited.',
        ),
      );
    } else {
      parts.push(
        h('p', {}, 'Want to speak? Ask the host to bring you on stage. You can check your camera before you go live.'),
      );
      const cooling = cooldownUntil > Date.now();
      if (cooling) {
        parts.push(
          h(
            'p',
            { class: 'notice info', role: 'status', 'data-testid': 'cooldown', 'data-cooldown': '' },
            cooldownText(),
          ),
        );
      }
      const ask = button(
        'Ask to join stage',
        'ask-button',
        () => void act('Could not ask to join', () => m.stage.requestAccess()),
        'big',
      );
      if (cooling) ask.disabled = true;
      parts.push(h('div', { class: 'btn-row' }, ask));
    }
  } else if (status === 'REQUESTED_TO_JOIN_STAGE') {
    parts.push(
      h(
        'div',
        { class: 'waiting', 'data-testid': 'waiting' },
        h('span', { class: 'spinner' }),
        h(
          'span',
          {},
          'Waiting for the host to let you in… ',
          h('span', { 'data-wait': '' }, formatWait(Date.now() - requestedAt)),
        ),
      ),
    );
    const { position, queueLength } = m.stage;
    if (position !== undefined) {
      parts.push(
        h(
          'p',
          { class: 'queue-position', 'data-testid': 'queue-position', 'data-position': String(position) },
          h('strong', {}, `You are #${position}`),
          queueLength !== undefined ? ` of ${queueLength} in the queue.` : ' in the queue.',
        ),
      );
    }
    parts.push(
      h(
        'div',
        { class: 'btn-row' },
        button(
          'Cancel request',
          'cancel-request-button',
          () => void act('Could not cancel', () => m.stage.cancelRequestAccess()),
          'secondary',
        ),
      ),
    );
  } else if (status === 'ACCEPTED_TO_JOIN_STAGE') {
    const showPreview = (!!granted && !granted.invited) || previewWanted || local.live;
    const title = granted
      ? granted.invited
        ? `${nameOf(granted.by)} invited you to the stage`
        : mode === 'OPEN'
          ? 'The host opened the stage to everyone: your request is approved'
          : 'Your request was accepted'
      : 'The stage is open';
    const callout = h(
      'div',
      { class: 'invite-callout', 'data-testid': 'accepted-panel' },
      h('h3', {}, title),
      h(
        'p',
        {},
        showPreview
          ? 'This is how you will look. Join when you are ready, everyone will see and hear you.'
          : granted
            ? 'Your camera stays off until you choose. Check it first, join right away, or decline.'
            : 'Everyone may join the stage in this webinar. Check your camera first, or join right away.',
      ),
    );
    if (showPreview) {
      if (previewVideo.srcObject !== (local.stream ?? null)) previewVideo.srcObject = local.stream ?? null;
      callout.append(
        h(
          'div',
          { class: 'preview' },
          previewVideo,
          h('span', { class: 'preview-tag', 'data-testid': 'preview-tag' }, previewTag()),
        ),
      );
      if (previewError instanceof DeviceProblem) callout.append(devicesPanel(previewError));
      else if (previewError) callout.append(h('p', { class: 'faint' }, previewError));
      controls.update('preview');
      if (local.live) callout.append(controls.el);
    }
    const row = h('div', { class: 'btn-row' });
    const joinButton = button(
      'Join stage',
      'join-stage-button',
      () => void act('Could not join the stage', () => joinStage(m)),
      'success big',
    );
    // blocked devices: Retry first (the panel above says how to fix it)
    if (previewError instanceof DeviceProblem) joinButton.disabled = true;
    row.append(joinButton);
    if (granted && !showPreview) {
      row.append(
        button(
          'Check camera',
          'preview-button',
          () => {
            previewWanted = true;
            void startPreview();
          },
          'secondary big',
        ),
      );
    }
    if (granted) {
      row.append(
        button(
          'Decline',
          'decline-button',
          () => void act('Could not decline', () => m.stage.leave()),
          'secondary big',
        ),
      );
    } else if (!showPreview) {
      row.append(
        button(
          'Check camera',
          'preview-button',
          () => {
            previewWanted = true;
            void startPreview();
          },
          'secondary big',
        ),
      );
    } else {
      row.append(
        button(
          'Close preview',
          'close-preview-button',
          () => {
            previewWanted = false;
            local.stop();
            renderAll();
          },
          'secondary big',
        ),
      );
    }
    callout.append(row);
    parts.push(callout);
  } else {
    parts.push(h('p', {}, h('strong', {}, 'You are live. '), 'Everyone in the webinar sees and hears you.'));
    const endsAt = m.stage.slotEndsAt;
    if (endsAt) {
      const left = endsAt - Date.now();
      const warn = slotEnding || left <= SLOT_WARNING_MS;
      parts.push(
        h(
          'p',
          {
            class: `slot-countdown notice ${warn ? 'warn' : 'info'}`,
            role: warn ? 'alert' : 'status',
            'data-testid': 'slot-countdown',
            'data-slot': '',
            'data-warn': String(warn),
          },
          'Your turn on stage ends in ',
          h('strong', { 'data-slot-left': '' }, mmss(left)),
          warn ? '. Time to wrap up: the stage moves on when it runs out.' : '.',
        ),
      );
    }
    controls.update('stage');
    parts.push(controls.el);
    parts.push(
      h(
        'div',
        { class: 'btn-row' },
        button(
          'Leave stage',
          'leave-stage-button',
          () => void act('Could not leave the stage', () => m.stage.leave()),
          'danger big',
        ),
      ),
    );
  }
  selfPanel.replaceChildren(...parts);
}

function renderStage(): void {
  const m = meeting!;
  const specs: TileSpec[] = [];
  if (m.connected) {
    for (const p of m.participants.values()) {
      if (p.stageStatus !== 'ON_STAGE') continue;
      specs.push({ id: p.id, name: p.name, video: p.tracks.video, audio: p.tracks.audio });
      if (p.tracks.screenshare)
        specs.push({ id: `${p.id}:screen`, name: `${p.name} (screen)`, video: p.tracks.screenshare });
    }
    if (m.stage.status === 'ON_STAGE') {
      const mine = m.localTracks;
      const cameraOff = !!m.stage.isPaused('video');
      const screen = [...m.producers.values()].find((p) => p.source === 'screenshare')?.track;
      if (screen) specs.unshift({ id: `${m.self.id}:screen`, name: `${m.self.name} (screen)`, video: screen });
      specs.unshift({
        id: m.self.id,
        name: m.self.name,
        self: true,
        video: cameraOff ? undefined : mine.video,
        audio: mine.audio,
      });
    }
  }
  stage.render(specs);
  const speakers = specs.filter((t) => !t.id.endsWith(':screen')).length;
  byId('stage-count').textContent = String(speakers);
  byId('stage-hint').textContent = speakers ? `${speakers === 1 ? '1 speaker' : `${speakers} speakers`} live` : '';
}

function renderPeople(): void {
  const m = meeting!;
  const mode = m.stage.mode;
  const all = [
    { id: m.self.id, name: m.self.name, presetName: m.self.preset.name, stageStatus: m.stage.status, self: true },
    ...[...m.participants.values()].map((p) => ({ ...p, self: false })),
  ];
  const rank = (s: StageStatus) =>
    s === 'ON_STAGE' ? 0 : s === 'ACCEPTED_TO_JOIN_STAGE' ? 1 : s === 'REQUESTED_TO_JOIN_STAGE' ? 2 : 3;
  all.sort((a, b) => rank(a.stageStatus) - rank(b.stageStatus) || a.name.localeCompare(b.name));
  // In a hidden audience this is the stage (and you); the audience is a number. A visible room
  // of thousands still renders only the first rows.
  const { shown, matches } = visibleSlice(all, '');
  const more = moreRow(matches - shown.length, 'people-more');
  byId('audience-count').textContent =
    m.settings.audience === 'hidden'
      ? `${watchingText(m.audienceCount)} · the audience is private: only hosts see who is watching`
      : watchingText(m.audienceCount);
  people.replaceChildren(
    ...shown.map((p) =>
      personRow({
        id: p.id,
        name: p.name,
        presetName: p.presetName,
        status: p.stageStatus,
        mode,
        self: p.self,
        testid: 'person',
      }),
    ),
    ...(more ? [more] : []),
  );
  byId('people-count').textContent = String(all.length);
}
