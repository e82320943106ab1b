/**
 * Shared UI helpers of the demo pages: DOM building, the demo API (room + token), status and
 * mode wording, toasts, video tiles with audio level meters, and the app-owned local media.
 * UI code only: everything about the stage and media goes through the thin client ('../index.js').
 */
// Types only from the client: the landing page, which uses these helpers, does not load mediasoup.
import type { AudienceVisibility, Meeting, StageMode, StageStatus } from '../index.js';
import { StagegateError } from '../../shared/errors.js';
import { PRESETS } from '../../shared/stage.js';

// ------------------------------------------------------------------ DOM
type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | undefined | ((ev: Event) => void)>;

/** `h('button', { class: 'x', onclick: fn, 'data-testid': 'y' }, 'Label')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, ''), value);
    else if (key === 'class') el.className = String(value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) el.append(child);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

export function params(): URLSearchParams {
  return new URLSearchParams(location.search);
}

// ------------------------------------------------------------------ demo API
export interface DemoRoom {
  roomId: string;
  hostKey: string;
  hostPath: string;
  /** The viewer page with the room's speaker key: its holder joins with the `speaker` preset. */
  speakerPath: string;
  viewerPath: string;
}

export interface DemoToken {
  token: string;
  userId: string;
  roomId: string;
}

async function postJson<T>(path: string, body: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new StagegateError('INTERNAL', `the server is not reachable (${(err as Error).message})`);
  }
  const data = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  if (!res.ok) {
    const code = data.error?.code;
    throw new StagegateError(
      code === 'NOT_FOUND' || code === 'FORBIDDEN' || code === 'INVALID_REQUEST' ? code : 'INTERNAL',
      data.error?.message ?? `HTTP ${res.status}`,
    );
  }
  return data as T;
}

export function createDemoRoom(mode?: StageMode, audience?: AudienceVisibility): Promise<DemoRoom> {
  return postJson<DemoRoom>('/demo/rooms', { ...(mode ? { mode } : {}), ...(audience ? { audience } : {}) });
}

/**
 * A demo token. On a speaker link (`viewer.html?room=ID&speaker=KEY`) a viewer token is asked
 * for as a speaker's, with the link's key (the viewer page needs no change for it).
 */
export function demoToken(t: {
  roomId: string;
  name: string;
  role: 'host' | 'speaker' | 'viewer';
  hostKey?: string;
  speakerKey?: string;
}): Promise<DemoToken> {
  const speakerKey = params().get('speaker')?.trim();
  if (t.role === 'viewer' && speakerKey) t = { ...t, role: 'speaker', speakerKey };
  return postJson<DemoToken>('/demo/tokens', t);
}

/** One audit record, as the host console shows it (see the README's "Audit trail and webhooks"). */
export interface AuditRecordView {
  id: number;
  at: string;
  actor: string;
  action: string;
  target?: string;
  from?: string;
  to?: string;
  reason?: string;
  details?: Record<string, unknown>;
}

/** The host console's backend reads of a demo room (they need the host key). */
export const demoHost = {
  audit(roomId: string, hostKey: string, after = 0) {
    return postJson<{ records: AuditRecordView[]; next: number | null; names: Record<string, string> }>(
      `/demo/rooms/${encodeURIComponent(roomId)}/audit`,
      { hostKey, after, limit: 500 },
    );
  },
  moderation(roomId: string, hostKey: string) {
    return postJson<{
      bans: string[];
      holds: Record<string, { held: MediaSourceName[]; unmuteRequested: MediaSourceName[] }>;
      names: Record<string, string>;
      speakerPath: string;
    }>(`/demo/rooms/${encodeURIComponent(roomId)}/moderation`, { hostKey });
  },
  unban(roomId: string, hostKey: string, userId: string) {
    return postJson(`/demo/rooms/${encodeURIComponent(roomId)}/unban`, { hostKey, userId });
  },
};
type MediaSourceName = 'audio' | 'video' | 'screenshare';

/** The host ends the webinar for everyone (the room closes; needs the host key). */
export function endDemoRoom(roomId: string, hostKey: string): Promise<unknown> {
  return postJson(`/demo/rooms/${encodeURIComponent(roomId)}/end`, { hostKey });
}

// ------------------------------------------------------------------ long lists
/** The most rows a participant list renders; the rest are counted ("and 4,950 more"). */
export const LIST_LIMIT = 50;

/**
 * Filters `all` by `query` (case-insensitive, in the name) and keeps the first `limit`: a list
 * of 5,000 renders 50 rows and a line for the rest, never 5,000 DOM rows.
 */
export function visibleSlice<T extends { name: string }>(
  all: readonly T[],
  query: string,
  limit = LIST_LIMIT,
): { shown: T[]; matches: number } {
  const q = query.trim().toLocaleLowerCase();
  const matching = q ? all.filter((p) => p.name.toLocaleLowerCase().includes(q)) : all;
  return { shown: matching.slice(0, limit), matches: matching.length };
}

/** The "and K more" line under a cut list (undefined when nothing was cut). */
export function moreRow(hidden: number, testid: string): HTMLLIElement | undefined {
  if (hidden <= 0) return undefined;
  return h(
    'li',
    { class: 'empty', 'data-testid': testid },
    `and ${hidden.toLocaleString('en')} more: search to find them`,
  );
}

/** "1 watching" / "1,234 watching". */
export function watchingText(count: number): string {
  return `${count.toLocaleString('en')} watching`;
}

// ------------------------------------------------------------------ wording
export const STATUS_TEXT: Record<StageStatus, string> = {
  OFF_STAGE: 'Watching',
  REQUESTED_TO_JOIN_STAGE: 'Request pending',
  ACCEPTED_TO_JOIN_STAGE: 'Ready to join',
  ON_STAGE: 'On stage',
};

export const MODE_TEXT: Record<StageMode, string> = {
  OPEN: 'Everyone on stage',
  REQUEST: 'Join by request',
  INVITE: 'Invite only',
};

export const MODE_HELP: Record<StageMode, string> = {
  OPEN: 'Anyone can step on stage without asking.',
  REQUEST: 'Viewers ask to join; you accept or deny each request.',
  INVITE: 'Requests are off; only people you invite can join the stage.',
};

export function statusBadge(status: StageStatus, big = false, testid?: string): HTMLSpanElement {
  const el = h('span', { class: `badge${big ? ' big' : ''}`, 'data-testid': testid });
  setStatusBadge(el, status);
  return el;
}

/** `tone` colours the badge as another status (e.g. an off-stage host is ACCEPTED but shown grey). */
export function setStatusBadge(
  el: HTMLElement,
  status: StageStatus,
  label = STATUS_TEXT[status],
  tone: StageStatus = status,
): void {
  el.className = el.className.replace(/status-\S+/g, '').trim() + ` status-${tone}`;
  el.dataset.status = status;
  if (el.textContent !== label) el.textContent = label; // aria-live: announced only when it changes
}

/** How a participant's status reads in a list: an ACCEPTED host is simply "Off stage". */
export function peerBadge(status: StageStatus, presetName: string, mode: StageMode): HTMLSpanElement {
  const el = h('span', { class: 'badge', 'data-testid': 'peer-status' });
  if (status === 'ACCEPTED_TO_JOIN_STAGE' && mayJoinDirectly(presetName, mode))
    setStatusBadge(el, status, 'Off stage', 'OFF_STAGE');
  else if (status === 'ACCEPTED_TO_JOIN_STAGE') setStatusBadge(el, status, 'Approved');
  else if (status === 'REQUESTED_TO_JOIN_STAGE') setStatusBadge(el, status, 'Asked to join');
  else setStatusBadge(el, status);
  return el;
}

export function roleName(presetName: string): string {
  return presetName === 'host' ? 'Host' : presetName === 'speaker' ? 'Speaker' : 'Viewer';
}

/** True when a participant with this preset may go on stage without a host (contract: ALLOWED, or OPEN mode). */
export function mayJoinDirectly(presetName: string, mode: StageMode): boolean {
  const preset = (PRESETS as Record<string, { stageAccess: string } | undefined>)[presetName];
  return mode === 'OPEN' || preset?.stageAccess === 'ALLOWED';
}

export function errorText(err: unknown): string {
  if (err instanceof StagegateError) {
    switch (err.code) {
      case 'STAGE_DISABLED':
        return 'The stage is invite only right now.';
      case 'FORBIDDEN':
        return `Not allowed: ${err.message}`;
      case 'RATE_LIMITED':
        return 'Slow down a little and try again.';

      default:
        return err.message;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * A name inside running text, isolated (FSI … PDI, as `<bdi>` does): a right-to-left name
 * cannot reorder the words around it. The server strips bidi controls from names, so a name
 * cannot close the isolate early.
 */
export function isolate(name: string): string {
  return `\u2068${name}\u2069`;
}

/** The grapheme clusters of a string (an emoji sequence is one). */
function graphemes(s: string): string[] {
  if (typeof Intl.Segmenter === 'function') {
    return [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s)].map((g) => g.segment);
  }
  return [...s];
}

/** Avatar letters: first letters of the first and last words ("AL"), or an emoji name's first emoji. */
export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return '?';
  const first = graphemes(parts[0]!)[0]!;
  if (/\p{Extended_Pictographic}/u.test(first)) return first;
  const last = parts.length > 1 ? (graphemes(parts[parts.length - 1]!)[0] ?? '') : (graphemes(parts[0]!)[1] ?? '');
  return (first + (/\p{Extended_Pictographic}/u.test(last) ? '' : last)).toLocaleUpperCase();
}

/** Dark enough for white initials (at least 4.5:1, WCAG AA). */
const AVATAR_COLORS = ['#4338ca', '#0369a1', '#0f766e', '#b45309', '#be185d', '#6d28d9', '#047857', '#b91c1c'];
export function colorFor(id: string): string {
  let n = 0;
  for (const c of id) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return AVATAR_COLORS[n % AVATAR_COLORS.length]!;
}

export function avatar(id: string, name: string): HTMLSpanElement {
  const el = h('span', { class: 'avatar-sm' }, initials(name));
  el.style.background = colorFor(id);
  return el;
}

/** One row of a participant list: avatar, name and role, status badge, and actions below. */
export function personRow(p: {
  id: string;
  name: string;
  presetName: string;
  status: StageStatus;
  mode: StageMode;
  self?: boolean;
  note?: string;
  testid: string;
  actions?: HTMLElement[];
}): HTMLLIElement {
  const badge = peerBadge(p.status, p.presetName, p.mode);
  return h(
    'li',
    { class: 'person', 'data-testid': p.testid, 'data-user-id': p.id, 'data-status': p.status },
    avatar(p.id, p.name),
    h(
      'div',
      { class: 'who' },
      h(
        'span',
        { class: 'nm' },
        h('span', { class: 'nm-text', dir: 'auto', title: p.name }, p.name),
        p.self ? h('span', { class: 'you-tag' }, 'You') : null,
      ),
      h('span', { class: 'sub' }, roleName(p.presetName) + (p.note ? ` · ${p.note}` : '')),
    ),
    badge,
    p.actions?.length ? h('div', { class: 'acts' }, ...p.actions) : null,
  );
}

export function formatWait(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return `${m}m ${String(s % 60).padStart(2, '0')}s`;
}

export function clock(date = new Date()): string {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ------------------------------------------------------------------ toasts & notices
export function toast(message: string, kind: 'info' | 'error' = 'info'): void {
  let box = document.querySelector<HTMLDivElement>('.toasts');
  if (!box) {
    box = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    // Under the top bar: fixed at the bottom left on a wide screen; on a phone part of the page
    // (style.css), so it pushes the content down instead of covering its buttons.
    const bar = document.querySelector('header.topbar');
    if (bar) bar.after(box);
    else document.body.append(box);
  }
  const el = h('div', { class: `toast${kind === 'error' ? ' error' : ''}`, 'data-testid': 'toast' }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 7000 : 4000);
}

export type NoticeKind = 'info' | 'warn' | 'error' | 'ok';

/** A dismissible banner; `tag` (data-notice) lets a page replace one notice of the same kind. */
export function notice(container: HTMLElement, kind: NoticeKind, message: string, tag: string): HTMLDivElement {
  container.querySelector(`[data-notice="${tag}"]`)?.remove();
  const el = h(
    'div',
    {
      class: `notice ${kind}`,
      'data-testid': 'notice',
      'data-notice': tag,
      role: kind === 'error' ? 'alert' : 'status',
    },
    h('span', { class: 'grow' }, message),
    h('button', { 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => el.remove() }, '×'),
  );
  container.prepend(el);
  return el;
}

export function clearNotice(container: HTMLElement, tag: string): void {
  container.querySelector(`[data-notice="${tag}"]`)?.remove();
}

// ------------------------------------------------------------------ misc
export async function copyText(text: string, input?: HTMLInputElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!input) return false;
    input.select();
    // Fallback for non-secure origins (plain http on a LAN address).
    return document.execCommand('copy');
  }
}

export type { Meeting };

/** What a page says when its meeting ends, by reason (see DisconnectReason). */
export interface ConnectionTexts {
  left: string;
  replaced: string;
  /** Label of the button that reloads the page. */
  again: string;
}

/**
 * The connection and media notices both pages show: reconnecting / reconnected, background
 * media errors, and why the meeting ended (with a button to load the page again).
 * `onChange` re-renders the page; `onEnded` runs first when the meeting is over.
 */
export function wireConnectionNotices(
  m: Meeting,
  notices: HTMLElement,
  texts: ConnectionTexts,
  onChange: () => void,
  onEnded: () => void,
): void {
  m.on('mediaError', ({ error, during }) => {
    if (during === 'publish') notice(notices, 'error', `Your camera could not go live: ${errorText(error)}`, 'media');
    else toast(`A speaker's media could not be received: ${errorText(error)}`, 'error');
    onChange();
  });
  m.on('reconnecting', ({ attempt }) => {
    notice(
      notices,
      'warn',
      `Connection lost. Reconnecting${attempt > 1 ? ` (attempt ${attempt})` : ''}…`,
      'connection',
    );
    document.body.dataset.connection = 'reconnecting';
    onChange();
  });
  m.on('reconnected', () => {
    clearNotice(notices, 'connection');
    document.body.dataset.connection = 'connected';
    toast('Reconnected');
    onChange();
  });
  m.on('disconnected', ({ reason }) => {
    clearNotice(notices, 'connection');
    onEnded();
    const text =
      reason === 'left'
        ? texts.left
        : reason === 'replaced'
          ? texts.replaced
          : reason === 'removed-from-room'
            ? 'The host removed you from this webinar.'
            : reason === 'room-closed' || reason === 'server-shutdown'
              ? 'The webinar has ended.'
              : 'The connection to the webinar was lost.';
    const el = notice(notices, 'error', text, 'disconnected');
    el.dataset.reason = reason;
    // removed: final (no way back from this page; a ban refuses it anyway)
    if (reason !== 'removed-from-room') {
      el.insertBefore(
        h('button', { class: 'small secondary', onclick: () => location.reload() }, texts.again),
        el.lastChild,
      );
    }
    document.body.dataset.state = 'disconnected';
    onChange();
  });
}

declare global {
  interface Window {
    /** The joined meeting, for tests and debugging from the console. */
    __meeting?: Meeting;
  }
}

export interface LobbyOptions {
  /** localStorage key of the remembered display name. */
  nameKey: string;
  defaultName: string;
  /**
   * Where this page's identities are kept ("viewer:ROOM", "host:ROOM"): a reload, or another tab
   * entering with the same name, resumes the same user with its latest token.
   */
  identityKey: string;
  /** Set when the link cannot work: what to say, and the label of the link back home. */
  invalid?: { text: string; back: string } | undefined;
  /** The room of the link: checked on load (`GET /demo/rooms/ID`), before a name is asked for. */
  roomId: string;
  /** The join button's label, and its label while joining. */
  idleLabel: string;
  busyLabel: string;
  /** Joins the room with this display name (with the stored token when resuming); throws when it cannot. */
  join(name: string, token: string | undefined): Promise<Meeting>;
  /** What the lobby says when `join` threw. */
  failure(err: unknown): string;
  /** Runs once joined, with the room shown. */
  joined(meeting: Meeting): void;
}

/**
 * The identities a browser keeps per room and role: display name → the latest token of that
 * user (localStorage, shared by tabs: the same person in a second tab is the same user, and the
 * server replaces the older tab). The tab's own identity (sessionStorage) survives a reload.
 */
export const identities = {
  key: (identityKey: string, name: string) => `stagegate.id.${identityKey}.${name.trim().toLocaleLowerCase()}`,
  token(identityKey: string, name: string): string | undefined {
    return localStorage.getItem(this.key(identityKey, name)) ?? undefined;
  },
  save(identityKey: string, name: string, token: string): void {
    localStorage.setItem(this.key(identityKey, name), token);
    sessionStorage.setItem(`stagegate.tab.${identityKey}`, name);
  },
  forget(identityKey: string, name: string): void {
    localStorage.removeItem(this.key(identityKey, name));
    sessionStorage.removeItem(`stagegate.tab.${identityKey}`);
  },
  /** The name this tab entered with (set until the tab closes; a reload resumes it). */
  tabName(identityKey: string): string | undefined {
    return sessionStorage.getItem(`stagegate.tab.${identityKey}`) ?? undefined;
  },
};

/**
 * The lobby both pages start with: a display name (from `&name=`, else the remembered one), the
 * join button, errors in place; once joined it shows the room. A reloaded tab enters again at
 * once as the same user (the server kept its place for the reconnect grace period: the page does
 * not leave when it goes away).
 */
export function runLobby(o: LobbyOptions): void {
  // a speaker link is another person than a viewer of the same name in this browser
  if (params().get('speaker')) o = { ...o, identityKey: `${o.identityKey}:speaker` };
  const lobby = byId('lobby');
  const form = byId<HTMLFormElement>('lobby-form');
  const nameInput = byId<HTMLInputElement>('name-input');
  const button = byId<HTMLButtonElement>('join-button');
  const errorEl = byId('lobby-error');
  nameInput.value = params().get('name') ?? localStorage.getItem(o.nameKey) ?? o.defaultName;
  /** A link that cannot work: said in the card (not inside the hidden form), with a way back. */
  const broken = (text: string, back: string) => {
    form.hidden = true;
    const box = h('div', { 'data-testid': 'broken-link' });
    form.before(box);
    notice(box, 'error', text, 'lobby');
    box.append(h('p', {}, h('a', { href: '/' }, back)));
  };
  if (o.invalid) return broken(o.invalid.text, o.invalid.back);
  void fetch(`/demo/rooms/${encodeURIComponent(o.roomId)}`)
    .then((res) => {
      if (res.status === 404)
        broken(
          'This webinar does not exist or has ended. Check the link, or ask the host for a new one.',
          '← Back to Stagegate',
        );
    })
    .catch(() => undefined); // the server is down: joining will say so
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void enter(nameInput.value.trim());
  });
  const resume = identities.tabName(o.identityKey);
  if (resume && identities.token(o.identityKey, resume)) {
    nameInput.value = resume;
    void enter(resume);
  }

  async function enter(name: string): Promise<void> {
    if (!name) return nameInput.focus();
    localStorage.setItem(o.nameKey, name);
    button.disabled = true;
    button.textContent = o.busyLabel;
    clearNotice(errorEl, 'lobby');
    let meeting: Meeting;
    try {
      const stored = identities.token(o.identityKey, name);
      try {
        meeting = await o.join(name, stored);
      } catch (err) {
        // An expired or foreign stored token: forget it and enter as a new user.
        // (a banned user stays out: no fresh identity either)
        if (!stored || codeOf(err) === 'NOT_FOUND' || codeOf(err) === 'BANNED') throw err;
        identities.forget(o.identityKey, name);
        meeting = await o.join(name, undefined);
      }
    } catch (err) {
      button.disabled = false;
      button.textContent = o.idleLabel;
      const message = err instanceof Error ? err.message.replace(/ at name$/, '') : '';
      // the server's word on a name it refuses, as a sentence next to the field
      const text =
        codeOf(err) === 'INVALID_REQUEST' && message.startsWith('the display name')
          ? `Please choose another name: ${message.slice(4)}.`
          : o.failure(err);
      notice(errorEl, 'error', text, 'lobby');
      nameInput.focus();
      return;
    }
    window.__meeting = meeting;
    identities.save(o.identityKey, name, meeting.token);
    meeting.on('tokenRefreshed', () => identities.save(o.identityKey, name, meeting.token));
    lobby.hidden = true;
    byId('room').hidden = false;
    byId('who').textContent = meeting.self.name;
    byId('who').dir = 'auto';
    o.joined(meeting);
    document.body.dataset.state = 'joined';
  }
}

/** The error code a thin-client rejection carries, if any. */
export function codeOf(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err ? String(err.code) : undefined;
}
