/**
 * Host console: `host.html?room=ID&key=HOSTKEY[&name=Display%20Name]`.
 *
 * Live stage tiles with audio level meters, the ordered request queue (accept / deny, all at
 * once), every participant with Invite / Remove (searchable; a list of thousands renders its
 * first rows and counts the rest), the stage mode and audience switches, and the host's own
 * Join stage / Leave stage. Moderation (STAGE.md Part 2): the room settings (seats, auto-fill,
 * acceptance time-out, slot length, cool-down), per speaker mute / allow to unmute and "Mute
 * everyone", slot countdowns with "+1 min", remove and ban (confirmed, naming the person), the
 * bans with Unban, and the room's audit trail. Everything shown comes from the server's events
 * (a co-host's console shows the same), plus the demo routes' reads with the host key (bans,
 * holds and the audit trail).
 *
 * Test hook (the only global): `window.__meeting` is the joined Meeting, set once joined.
 */
import {
  joinMeeting,
  type AccessRequest,
  type BatchResult,
  type Meeting,
  type AudienceVisibility,
  type MediaSource,
  type RemoteParticipant,
  type RoomSettings,
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
  demoHost,
  clearNotice,
  roleName,
  type AuditRecordView,
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
/** What hosts hold of each participant, and which held sources they asked to have back (from the events). */
const holds = new Map<string, { held: Set<MediaSource>; asked: Set<MediaSource> }>();
/** Banned user ids (oldest first), as the server lists them. */
let bans: string[] = [];
/** Names of people no longer in the room (removed, banned, left), for the bans list and the audit trail. */
const knownNames = new Map<string, string>();
/** Removed from the room: their departure is logged as a removal, not "left the webinar". */
const removedIds = new Set<string>();
let speakerLink = '';
let shownSettings: RoomSettings | undefined;

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
    const m = await joinMeeting({
      url: location.origin,
      token,
      roomId,
      tracks: (allowed) => local.tracksFor(allowed),
      // the open preview's camera: its sender is negotiated before Go live, so going live is quick
      previewTracks: () => ({ video: local.track('video') }),
    });
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
    shownSettings = { ...m.settings };
    wire(m);
    wireModeration(m);
    void loadModeration();
    const others = m.participants.size;
    log(`You opened the console (${others} other participant${others === 1 ? '' : 's'} here).`);
    renderAll();
  },
});

function nameOf(userId: string | undefined): string {
  if (!userId || !meeting) return 'someone';
  if (userId === meeting.self.id) return 'You';
  const name =
    meeting.participants.get(userId)?.name ?? requests.find((r) => r.userId === userId)?.name ?? knownNames.get(userId);
  return name ? isolate(name) : 'someone';
}

/** Arrivals and departures in one burst become one line ("Ada and 41 others joined."). */
const burst = new Map<string, Array<[string, string]>>();
function logSoon(text: string, kind: string, userId: string): void {
  const lines = burst.get(kind);
  if (lines) return void lines.push([text, userId]);
  burst.set(kind, [[text, userId]]);
  setTimeout(() => {
    // a removal is logged as such, not also as leaving
    const all = (burst.get(kind) ?? []).filter(([, id]) => !removedIds.has(id)).map(([t]) => t);
    burst.delete(kind);
    if (!all.length) return;
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
    logSoon(`${isolate(participant.name)} joined.`, 'joined', participant.id);
    renderSoon();
  });
  m.on('participantLeft', ({ participant }) => {
    knownNames.set(participant.id, participant.name);
    holds.delete(participant.id);
    logSoon(`${isolate(participant.name)} left the webinar.`, 'left the webinar', participant.id);
    renderSoon();
  });
  m.on('roomSettingsUpdate', ({ settings, by }) => {
    const before = shownSettings ?? settings;
    shownSettings = { ...settings };
    const who = by ? nameOf(by) : 'A host';
    if (settings.audience !== before.audience) {
      log(settings.audience === 'hidden' ? `${who} made the audience private.` : `${who} let everyone see everyone.`);
    }
    const changed = SETTING_KEYS.filter((k) => settings[k] !== before[k]);
    if (changed.length) log(`${who} changed the room settings: ${describeSettings(settings, changed)}.`);
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
  renderSpeakers();
  renderSettings();
  renderRequests();
  renderPeople();
  renderBans();
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
    meeting?.previewChanged();
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
  // a slot's countdown on each tile that has one (the tile is media.ts's; the badge is ours)
  for (const tile of byId('stage-grid').querySelectorAll<HTMLElement>('[data-testid="stage-tile"]')) {
    const endsAt = m.participants.get(tile.dataset.userId ?? '')?.slotEndsAt;
    let badge = tile.querySelector<HTMLElement>(':scope > .slot-left');
    if (endsAt === undefined) badge?.remove();
    else {
      badge ??= tile.appendChild(h('span', { class: 'slot-left', 'data-testid': 'tile-slot' }));
      badge.dataset.endsAt = String(endsAt);
      tickSlot(badge);
    }
  }
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
    actions.push(...removalButtons(m, p, busy));
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

// ------------------------------------------------------------------ moderation (STAGE.md Part 2)
const SOURCE_WORD: Record<MediaSource, string> = { audio: 'mic', video: 'camera', screenshare: 'screen share' };
const SETTING_KEYS = ['stageCap', 'autoFill', 'acceptTimeoutSeconds', 'slotSeconds', 'requestCooldownSeconds'] as const;
type SettingKey = (typeof SETTING_KEYS)[number];
/** The settings form's labels: a refusal names the field as the page does. */
const SETTING_LABEL: Record<SettingKey, string> = {
  stageCap: 'Stage seats',
  autoFill: 'Auto-fill free seats from the queue',
  acceptTimeoutSeconds: 'Acceptance time-out',
  slotSeconds: 'Slot length',
  requestCooldownSeconds: 'Request cool-down',
};

function seconds(n: number): string {
  if (n < 60 || n % 60) return `${n} s`;
  return n % 3600 ? `${n / 60} min` : `${n / 3600} h`;
}

/** "3 seats, auto-fill on, …" for the settings named (all by default). */
function describeSettings(st: RoomSettings, keys: readonly SettingKey[] = SETTING_KEYS): string {
  const say: Record<SettingKey, string> = {
    stageCap: st.stageCap === null ? 'no seat limit' : `${st.stageCap} seat${st.stageCap === 1 ? '' : 's'}`,
    autoFill: `auto-fill ${st.autoFill ? 'on' : 'off'}`,
    acceptTimeoutSeconds: `acceptance time-out ${seconds(st.acceptTimeoutSeconds)}`,
    slotSeconds: st.slotSeconds === null ? 'no slot limit' : `slots of ${seconds(st.slotSeconds)}`,
    requestCooldownSeconds: st.requestCooldownSeconds
      ? `request cool-down ${seconds(st.requestCooldownSeconds)}`
      : 'no request cool-down',
  };
  return keys.map((k) => say[k]).join(', ');
}

function holdOf(userId: string): { held: Set<MediaSource>; asked: Set<MediaSource> } {
  let hold = holds.get(userId);
  if (!hold) holds.set(userId, (hold = { held: new Set(), asked: new Set() }));
  return hold;
}

/** Bans and holds as the server has them (a console opened late, or after a change). */
async function loadModeration(): Promise<void> {
  try {
    const state = await demoHost.moderation(roomId, hostKey);
    bans = state.bans;
    for (const [id, name] of Object.entries(state.names)) if (!knownNames.has(id)) knownNames.set(id, name);
    holds.clear();
    for (const [id, h] of Object.entries(state.holds)) {
      holds.set(id, { held: new Set(h.held), asked: new Set(h.unmuteRequested) });
    }
    speakerLink = new URL(state.speakerPath, location.origin).href;
    byId<HTMLButtonElement>('copy-speaker-link').disabled = false;
  } catch (err) {
    toast(`Could not read the bans: ${errorText(err)}`, 'error');
  }
  if (meeting) renderAll();
}

function wireModeration(m: Meeting): void {
  const s = m.stage;
  s.on('mutedByHost', ({ userId, by, sources }) => {
    const hold = holdOf(userId);
    for (const src of sources) hold.held.add(src);
    log(`${nameOf(by)} muted ${nameOf(userId)}'s ${sources.map((x) => SOURCE_WORD[x]).join(' and ')}.`);
    renderAll();
  });
  s.on('unmuteRequested', ({ userId, source }) => {
    holdOf(userId).asked.add(source);
    chime();
    log(`${nameOf(userId)} asks to unmute their ${SOURCE_WORD[source]}.`);
    toast(`${nameOf(userId)} asks to unmute their ${SOURCE_WORD[source]}`);
    renderAll();
  });
  s.on('unmuteAllowed', ({ userId, by, sources }) => {
    const hold = holdOf(userId);
    for (const src of sources) {
      hold.held.delete(src);
      hold.asked.delete(src);
    }
    log(`${nameOf(by)} allowed ${nameOf(userId)} to unmute their ${sources.map((x) => SOURCE_WORD[x]).join(' and ')}.`);
    renderAll();
  });
  s.on('participantRemoved', ({ userId, by, banned }) => {
    const name = nameOf(userId);
    if (m.participants.get(userId)) knownNames.set(userId, m.participants.get(userId)!.name);
    removedIds.add(userId);
    holds.delete(userId);
    log(banned ? `${nameOf(by)} removed and banned ${name}.` : `${nameOf(by)} removed ${name} from the webinar.`);
    if (banned && !bans.includes(userId)) bans = [...bans, userId];
    renderAll();
    if (banned) void loadModeration();
  });
  s.on('stageSlotUpdate', ({ userId, endsAt, by }) => {
    if (by && endsAt !== null && by !== '@auto')
      log(`${nameOf(by)} extended ${nameOf(userId)}'s slot (ends ${clock(new Date(endsAt))}).`);
    renderAll();
  });
  s.on('stageSlotEnding', ({ userId, endsAt }) => {
    log(`${nameOf(userId)}'s slot ends in ${formatWait(endsAt - Date.now())}.`);
  });
  s.on('peerStageStatusUpdate', ({ userId, new: now }) => {
    // an unmute request ends when its owner leaves the stage; the hold stays
    if (now !== 'ON_STAGE' && holds.get(userId)?.asked.size) {
      holds.get(userId)!.asked.clear();
      renderSoon();
    }
  });

  byId('mute-everyone').addEventListener('click', () => {
    const ids = onStage(m)
      .filter((p) => !holds.get(p.id)?.held.has('audio'))
      .map((p) => p.id);
    if (ids.length) void act('mute-all', 'Could not mute everyone', () => batch(m.stage.mute(ids, ['audio'])));
  });

  const form = byId<HTMLFormElement>('settings-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const errorBox = byId('settings-error');
    clearNotice(errorBox, 'settings');
    let change: Partial<RoomSettings>;
    try {
      change = readSettingsForm(m.settings);
    } catch (err) {
      notice(errorBox, 'error', `Not applied: ${(err as Error).message}`, 'settings');
      return;
    }
    if (!Object.keys(change).length) return void toast('The settings are already like this');
    void act('settings', 'Could not apply the settings', async () => {
      try {
        await m.stage.setSettings(change);
        settingsDirty = false;
        toast('Settings applied');
      } catch (err) {
        notice(errorBox, 'error', `Not applied: ${settingsRefusal(err)}`, 'settings');
      }
    });
  });
  form.addEventListener('input', () => (settingsDirty = true));

  const auditToggle = byId<HTMLButtonElement>('audit-toggle');
  auditToggle.addEventListener('click', () => {
    const open = auditToggle.getAttribute('aria-expanded') !== 'true';
    auditToggle.setAttribute('aria-expanded', String(open));
    auditToggle.textContent = open ? 'Hide audit trail' : 'Show audit trail';
    byId('audit-body').hidden = !open;
    clearInterval(auditTimer);
    if (open) {
      void loadAudit();
      auditTimer = setInterval(() => void loadAudit(), 2000);
    }
  });

  const copy = (link: () => string, what: string) => () =>
    void copyText(link()).then((ok) => toast(ok ? `${what} copied` : link()));
  byId('copy-viewer-link-2').addEventListener(
    'click',
    copy(() => `${location.origin}/viewer.html?room=${encodeURIComponent(roomId)}`, 'Viewer link'),
  );
  byId('copy-speaker-link').addEventListener(
    'click',
    copy(() => speakerLink, 'Speaker link'),
  );
  byId('copy-host-link').addEventListener(
    'click',
    copy(() => location.href.replace(/&name=[^&]*/, ''), 'Host link'),
  );

  // an unban is the backend's (no notification): while someone is banned, the list is read again
  setInterval(() => {
    if (bans.length && m.connectionState === 'connected') void loadModeration();
  }, 3000);
  // slot countdowns tick every second without re-rendering
  setInterval(() => {
    for (const el of document.querySelectorAll<HTMLElement>('.slot-left[data-ends-at]')) tickSlot(el);
  }, 1000);
}

/** "4:59 left" on a countdown element (`data-ends-at`), amber in the last 30 s. */
function tickSlot(el: HTMLElement): void {
  const left = Math.max(0, Number(el.dataset.endsAt) - Date.now());
  const s = Math.ceil(left / 1000);
  el.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} left`;
  el.classList.toggle('ending', s <= 30);
}

function onStage(m: Meeting): RemoteParticipant[] {
  return [...m.participants.values()].filter((p) => p.stageStatus === 'ON_STAGE');
}

/** Remove and Ban for someone this host may remove (never another host: the server refuses it). */
function removalButtons(m: Meeting, p: RemoteParticipant, busy: boolean): HTMLElement[] {
  if (!m.self.preset.kickParticipant || p.presetName === 'host') return [];
  const name = p.name;
  return [
    h(
      'button',
      {
        class: 'small ghost-danger',
        'data-testid': 'remove-from-room',
        disabled: busy,
        onclick: () =>
          confirmAction(
            `Remove ${name} from the webinar?`,
            `${name} is disconnected now. They can come back with the link.`,
            `Remove ${name}`,
            () => removeFromRoom(m, p.id, name, false),
          ),
      },
      'Remove from webinar',
    ),
    h(
      'button',
      {
        class: 'small danger',
        'data-testid': 'ban-button',
        disabled: busy,
        onclick: () =>
          confirmAction(
            `Remove and ban ${name}?`,
            `${name} is disconnected now and cannot join this webinar again until you unban them (in Banned).`,
            `Remove and ban ${name}`,
            () => removeFromRoom(m, p.id, name, true),
          ),
      },
      'Ban',
    ),
  ];
}

function removeFromRoom(m: Meeting, userId: string, name: string, ban: boolean): void {
  knownNames.set(userId, name);
  void act(`p:${userId}`, `Could not remove ${isolate(name)}`, () => batch(m.stage.removeFromRoom([userId], { ban })));
}

/** A modal confirmation naming the consequence; `run` only on the confirm button. */
function confirmAction(title: string, text: string, ok: string, run: () => void): void {
  const dialog = byId<HTMLDialogElement>('confirm-dialog');
  byId('confirm-title').textContent = title;
  byId('confirm-text').textContent = text;
  byId('confirm-ok').textContent = ok;
  dialog.returnValue = '';
  dialog.onclose = () => {
    if (dialog.returnValue === 'ok') run();
  };
  dialog.showModal();
}

let settingsDirty = false;

/** The form's values that differ from `now`; a value the server cannot take is refused here, readably. */
function readSettingsForm(now: Readonly<RoomSettings>): Partial<RoomSettings> {
  const change: Partial<RoomSettings> = {};
  const num = (key: Exclude<SettingKey, 'autoFill'>, nullable: boolean): number | null => {
    const raw = byId<HTMLInputElement>(`set-${key}`).value.trim();
    if (raw === '' && nullable) return null;
    const n = Number(raw);
    if (raw === '' || !Number.isFinite(n)) throw new Error(`${SETTING_LABEL[key]} needs a whole number.`);
    return n;
  };
  const cap = num('stageCap', true);
  if (cap !== now.stageCap) change.stageCap = cap;
  const autoFill = byId<HTMLInputElement>('set-autoFill').checked;
  if (autoFill !== now.autoFill) change.autoFill = autoFill;
  const timeout = num('acceptTimeoutSeconds', false)!;
  if (timeout !== now.acceptTimeoutSeconds) change.acceptTimeoutSeconds = timeout;
  const slot = num('slotSeconds', true);
  if (slot !== now.slotSeconds) change.slotSeconds = slot;
  const cooldown = num('requestCooldownSeconds', false)!;
  if (cooldown !== now.requestCooldownSeconds) change.requestCooldownSeconds = cooldown;
  return change;
}

/** The server's refusal of a settings change, with the field named as on the page. */
function settingsRefusal(err: unknown): string {
  const text = errorText(err);
  for (const key of SETTING_KEYS) {
    if (text.includes(key)) {
      const limits: Partial<Record<SettingKey, string>> = {
        stageCap: 'from 0 to 10000, or empty for no limit',
        acceptTimeoutSeconds: 'from 1 to 86400',
        slotSeconds: 'from 1 to 86400, or empty for no limit',
        requestCooldownSeconds: 'from 0 to 86400',
      };
      return `${SETTING_LABEL[key]} must be a whole number ${limits[key] ?? ''}.`;
    }
  }
  return text;
}

function renderSettings(): void {
  const m = meeting!;
  const st = m.settings;
  byId('settings-summary').textContent = `Now: ${describeSettings(st)}.`;
  const off = m.connectionState !== 'connected' || pending.has('settings') || !m.self.preset.acceptStageRequests;
  byId<HTMLButtonElement>('apply-settings').disabled = off;
  byId('apply-settings').textContent = pending.has('settings') ? 'Applying…' : 'Apply settings';
  if (settingsDirty) return; // never overwrite what the host is typing
  const set = (key: Exclude<SettingKey, 'autoFill'>, v: number | null) => {
    const input = byId<HTMLInputElement>(`set-${key}`);
    if (document.activeElement !== input) input.value = v === null ? '' : String(v);
  };
  set('stageCap', st.stageCap);
  set('acceptTimeoutSeconds', st.acceptTimeoutSeconds);
  set('slotSeconds', st.slotSeconds);
  set('requestCooldownSeconds', st.requestCooldownSeconds);
  byId<HTMLInputElement>('set-autoFill').checked = st.autoFill;
}

/** One row per speaker on stage: holds and asks, slot countdown, mute / allow, +1 min, remove, ban. */
function renderSpeakers(): void {
  const m = meeting!;
  const people = onStage(m);
  byId('speaker-count').textContent = String(people.length);
  const off = m.connectionState !== 'connected';
  const muteAll = byId<HTMLButtonElement>('mute-everyone');
  muteAll.disabled =
    off ||
    pending.has('mute-all') ||
    !m.self.preset.kickParticipant ||
    !people.some((p) => !holds.get(p.id)?.held.has('audio'));
  const list = byId('speakers');
  if (!people.length) {
    list.replaceChildren(h('li', { class: 'empty' }, 'No one else is on stage. Their controls appear here.'));
    return;
  }
  const canMute = m.self.preset.kickParticipant;
  list.replaceChildren(
    ...people.map((p) => {
      const hold = holds.get(p.id);
      const busy = off || pending.has(`p:${p.id}`);
      const notes: Node[] = [];
      const acts: HTMLElement[] = [];
      for (const src of ['audio', 'video'] as const) {
        const word = SOURCE_WORD[src];
        const held = hold?.held.has(src) ?? false;
        const asked = hold?.asked.has(src) ?? false;
        if (asked)
          notes.push(h('span', { class: 'ask-tag', 'data-testid': `unmute-ask-${src}` }, `asks to unmute the ${word}`));
        else if (held)
          notes.push(h('span', { class: 'held-tag', 'data-testid': `held-${src}` }, `${word} muted by a host`));
        if (!canMute) continue;
        acts.push(
          held
            ? h(
                'button',
                {
                  class: `small ${asked ? 'success' : 'secondary'}`,
                  'data-testid': `allow-${src}`,
                  disabled: busy,
                  onclick: () =>
                    void act(`p:${p.id}`, `Could not allow ${isolate(p.name)}`, () =>
                      batch(m.stage.allowUnmute([p.id], [src])),
                    ),
                },
                `Allow ${word}`,
              )
            : h(
                'button',
                {
                  class: 'small secondary',
                  'data-testid': `mute-${src}`,
                  disabled: busy,
                  onclick: () =>
                    void act(`p:${p.id}`, `Could not mute ${isolate(p.name)}`, () =>
                      batch(m.stage.mute([p.id], [src])),
                    ),
                },
                src === 'audio' ? 'Mute mic' : 'Stop camera',
              ),
        );
      }
      if (p.slotEndsAt !== undefined && m.self.preset.acceptStageRequests) {
        acts.push(
          h(
            'button',
            {
              class: 'small secondary',
              'data-testid': 'extend-slot',
              title: `Give ${p.name} one more minute`,
              disabled: busy,
              onclick: () =>
                void act(`p:${p.id}`, `Could not extend ${isolate(p.name)}'s slot`, () => m.stage.extendSlot(p.id, 60)),
            },
            '+1 min',
          ),
        );
      }
      acts.push(...removalButtons(m, p, busy));
      const paused = p.producers.filter((x) => x.paused && !hold?.held.has(x.source)).map((x) => SOURCE_WORD[x.source]);
      if (paused.length) notes.push(h('span', {}, `${paused.join(' and ')} off`));
      const countdown =
        p.slotEndsAt === undefined
          ? null
          : h('span', { class: 'slot-left', 'data-testid': 'slot-countdown', 'data-ends-at': String(p.slotEndsAt) });
      if (countdown) tickSlot(countdown);
      return h(
        'li',
        {
          class: `person speaker-row${hold?.asked.size ? ' asking' : ''}`,
          'data-testid': 'speaker-row',
          'data-user-id': p.id,
          'data-held':
            (['audio', 'video', 'screenshare'] as const).filter((x) => hold?.held.has(x)).join(' ') || undefined,
        },
        avatar(p.id, p.name),
        h(
          'div',
          { class: 'who' },
          h('span', { class: 'nm' }, h('span', { class: 'nm-text', dir: 'auto', title: p.name }, p.name)),
          h('span', { class: 'sub' }, roleName(p.presetName), ...notes.flatMap((n) => [' · ', n])),
        ),
        countdown ?? h('span'),
        acts.length ? h('div', { class: 'acts' }, ...acts) : null,
      );
    }),
  );
}

function renderBans(): void {
  const m = meeting!;
  byId('ban-count').textContent = String(bans.length);
  const list = byId('bans');
  if (!bans.length) return void list.replaceChildren(h('li', { class: 'empty' }, 'No one is banned.'));
  list.replaceChildren(
    ...bans.map((id) => {
      const name = knownNames.get(id) ?? id;
      return h(
        'li',
        { class: 'person', 'data-testid': 'ban-item', 'data-user-id': id },
        avatar(id, name),
        h(
          'div',
          { class: 'who' },
          h('span', { class: 'nm' }, h('span', { class: 'nm-text', dir: 'auto', title: name }, name)),
          h('span', { class: 'sub' }, 'Cannot join until unbanned'),
        ),
        h(
          'button',
          {
            class: 'small secondary',
            'data-testid': 'unban-button',
            disabled: m.connectionState !== 'connected' || pending.has(`unban:${id}`),
            onclick: () =>
              void act(`unban:${id}`, `Could not unban ${isolate(name)}`, async () => {
                await demoHost.unban(roomId, hostKey, id);
                log(`You unbanned ${isolate(name)}.`);
                await loadModeration();
              }),
          },
          'Unban',
        ),
      );
    }),
  );
}

// ------------------------------------------------------------------ audit trail
let auditTimer: ReturnType<typeof setInterval> | undefined;
let auditAfter = 0;
let auditRecords: AuditRecordView[] = [];
const AUDIT_SHOWN = 100;
let auditLoading = false;

async function loadAudit(): Promise<void> {
  if (auditLoading) return;
  auditLoading = true;
  try {
    for (let pages = 0; pages < 20; pages++) {
      const page = await demoHost.audit(roomId, hostKey, auditAfter);
      for (const [id, name] of Object.entries(page.names)) if (!knownNames.has(id)) knownNames.set(id, name);
      auditRecords = [...auditRecords, ...page.records].slice(-AUDIT_SHOWN);
      if (page.records.length) auditAfter = page.records[page.records.length - 1]!.id;
      if (page.next === null) break;
    }
    renderAudit();
  } catch (err) {
    toast(`Could not read the audit trail: ${errorText(err)}`, 'error');
  } finally {
    auditLoading = false;
  }
}

const STATUS_WORD: Record<string, string> = {
  OFF_STAGE: 'off stage',
  REQUESTED_TO_JOIN_STAGE: 'asked to join',
  ACCEPTED_TO_JOIN_STAGE: 'ready to join',
  ON_STAGE: 'on stage',
};

function actorName(id: string): string {
  if (id === '@backend') return 'The host link (backend)';
  if (id === '@auto') return 'Stagegate (automatic)';
  if (id === '@server') return 'The server';
  if (id === meeting?.self.id) return 'You';
  return meeting?.participants.get(id)?.name ?? knownNames.get(id) ?? id;
}

/** One record in words: "Grace muted Bob's mic", "Bob: on stage → off stage (slot-ended)". */
function describeRecord(r: AuditRecordView): string {
  const who = isolate(actorName(r.actor));
  const target = r.target ? isolate(actorName(r.target)) : '';
  const d = r.details ?? {};
  const srcs = Array.isArray(d.sources)
    ? (d.sources as MediaSource[]).map((x) => SOURCE_WORD[x] ?? x).join(' and ')
    : '';
  const why = r.reason ? ` (${r.reason})` : '';
  switch (r.action) {
    case 'room.created':
      return 'The room was created';
    case 'room.closed':
      return `The room closed${why}`;
    case 'participant.joined':
      return `${who} joined`;
    case 'participant.left':
      return `${who} left${why}`;
    case 'participant.removed':
      return `${who} removed ${target}${r.reason === 'banned' ? ' and banned them' : ''}`;
    case 'participant.banned':
      return `${who} banned ${target}`;
    case 'participant.unbanned':
      return `${who} unbanned ${target}`;
    case 'stage.status':
      return `${target}: ${STATUS_WORD[r.from ?? ''] ?? r.from} → ${STATUS_WORD[r.to ?? ''] ?? r.to}${why}${
        r.actor !== r.target ? `, by ${who}` : ''
      }`;
    case 'stage.mode':
      return `${who} set the stage to “${MODE_TEXT[r.to as StageMode] ?? r.to}”`;
    case 'stage.slot':
      return typeof d.endsAt === 'number'
        ? `${target}'s slot ends at ${clock(new Date(d.endsAt))}${r.actor !== r.target ? `, set by ${who}` : ''}`
        : `${target}'s slot was cleared`;
    case 'settings.changed':
      return `${who} changed the settings: ${
        Array.isArray(d.changed) && d.settings
          ? describeSettings(
              d.settings as RoomSettings,
              (d.changed as string[]).filter((k): k is SettingKey => (SETTING_KEYS as readonly string[]).includes(k)),
            ) || (d.changed as string[]).join(', ')
          : ''
      }`;
    case 'media.held':
      return `${who} muted ${target}'s ${srcs}`;
    case 'media.unmuteRequested':
      return `${who} asked to unmute their ${srcs}`;
    case 'media.unmuteAllowed':
      return `${who} allowed ${target} to unmute their ${srcs}`;
    case 'producer.created':
      return `${who} started sending ${SOURCE_WORD[d.source as MediaSource] ?? String(d.source)}`;
    case 'producer.closed':
      return `${target || who} stopped sending ${SOURCE_WORD[d.source as MediaSource] ?? 'media'}${why}`;
    default:
      return `${who}: ${r.action}${target ? ` ${target}` : ''}${why}`;
  }
}

function renderAudit(): void {
  const list = byId('audit');
  if (!auditRecords.length) return void list.replaceChildren(h('li', { class: 'empty' }, 'Nothing recorded yet.'));
  list.replaceChildren(
    ...auditRecords
      .slice()
      .reverse()
      .map((r) =>
        h(
          'li',
          { 'data-testid': 'audit-item', 'data-action': r.action, 'data-id': String(r.id) },
          h('time', { datetime: r.at }, clock(new Date(r.at))),
          h('span', { class: 'what' }, describeRecord(r)),
        ),
      ),
  );
}
