/**
 * Shared UI helpers of the demo pages: DOM building, the demo API (room + token), status and
 * mode wording, toasts, video tiles with audio level meters, and the app-owned local media.
 * UI code only: everything about the stage and media goes through the thin client ('../index.js').
 */
// Types only from the client: the landing page, which uses these helpers, does not load mediasoup.
import type { AllowedKinds, LocalTracks, Meeting, StageMode, StageStatus } from '../index.js';
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

export function createDemoRoom(mode?: StageMode): Promise<DemoRoom> {
  return postJson<DemoRoom>('/demo/rooms', mode ? { mode } : {});
}

export function demoToken(t: {
  roomId: string;
  name: string;
  role: 'host' | 'viewer';
  hostKey?: string;
}): Promise<DemoToken> {
  return postJson<DemoToken>('/demo/tokens', t);
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
  el.textContent = label;
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

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0]![0]! + parts[parts.length - 1]![0]! : (parts[0] ?? '?').slice(0, 2);
  return letters.toUpperCase();
}

const AVATAR_COLORS = ['#6366f1', '#0ea5e9', '#14b8a6', '#f59e0b', '#ec4899', '#8b5cf6', '#10b981', '#ef4444'];
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
        h('span', { class: 'nm-text' }, p.name),
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
    document.body.append(box);
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

// ------------------------------------------------------------------ audio levels
let audioContext: AudioContext | undefined;
function getAudioContext(): AudioContext | undefined {
  if (typeof AudioContext === 'undefined') return undefined;
  audioContext ??= new AudioContext();
  if (audioContext.state === 'suspended') void audioContext.resume().catch(() => undefined);
  return audioContext;
}
// Browsers start an AudioContext suspended until a user gesture: resume it on the first click.
addEventListener('pointerdown', () => void audioContext?.resume().catch(() => undefined), { capture: true });

const meters = new Set<AudioMeter>();
/** A timer, not requestAnimationFrame: a host console in a background tab keeps metering. */
let meterTimer: ReturnType<typeof setInterval> | undefined;
function tickMeters(): void {
  for (const m of meters) m.update();
  if (!meters.size && meterTimer) {
    clearInterval(meterTimer);
    meterTimer = undefined;
  }
}

/** An AnalyserNode on one audio track, drawn into a bar; marks the tile as speaking. */
export class AudioMeter {
  readonly #source: MediaStreamAudioSourceNode;
  readonly #analyser: AnalyserNode;
  readonly #data: Uint8Array<ArrayBuffer>;
  #level = 0;

  private constructor(
    ctx: AudioContext,
    readonly track: MediaStreamTrack,
    private readonly bar: HTMLElement,
    private readonly tile: HTMLElement,
  ) {
    this.#source = ctx.createMediaStreamSource(new MediaStream([track]));
    this.#analyser = ctx.createAnalyser();
    this.#analyser.fftSize = 512;
    this.#analyser.smoothingTimeConstant = 0.6;
    this.#data = new Uint8Array(this.#analyser.fftSize);
    this.#source.connect(this.#analyser);
    meters.add(this);
    meterTimer ??= setInterval(tickMeters, 60);
  }

  static attach(track: MediaStreamTrack, bar: HTMLElement, tile: HTMLElement): AudioMeter | undefined {
    const ctx = getAudioContext();
    if (!ctx) return undefined;
    try {
      return new AudioMeter(ctx, track, bar, tile);
    } catch {
      return undefined;
    }
  }

  /** 0..1, smoothed. */
  get level(): number {
    return this.#level;
  }

  update(): void {
    this.#analyser.getByteTimeDomainData(this.#data);
    let sum = 0;
    for (const v of this.#data) {
      const x = (v - 128) / 128;
      sum += x * x;
    }
    const rms = Math.sqrt(sum / this.#data.length);
    // Perceptual-ish scale: -60 dBFS → 0, 0 dBFS → 1.
    const db = 20 * Math.log10(rms || 1e-6);
    const target = Math.min(1, Math.max(0, (db + 60) / 60));
    this.#level = target > this.#level ? target : this.#level * 0.85 + target * 0.15;
    this.bar.style.width = `${Math.round(this.#level * 100)}%`;
    this.tile.classList.toggle('speaking', this.#level > 0.45);
    this.tile.dataset.audioLevel = this.#level.toFixed(2);
  }

  stop(): void {
    meters.delete(this);
    this.#source.disconnect();
    this.bar.style.width = '0%';
    this.tile.classList.remove('speaking');
  }
}

// ------------------------------------------------------------------ tiles
export interface TileSpec {
  id: string;
  name: string;
  /** The local participant: mirrored, muted, "You" tag. */
  self?: boolean;
  video?: MediaStreamTrack | undefined;
  audio?: MediaStreamTrack | undefined;
  /** Shows a "Remove" action on the tile. */
  onRemove?: (() => void) | undefined;
}

/** One participant on stage: video (or avatar), name, audio level meter; plays remote audio. */
export class Tile {
  readonly el: HTMLDivElement;
  readonly #video: HTMLVideoElement;
  readonly #audio: HTMLAudioElement;
  readonly #avatar: HTMLDivElement;
  readonly #name: HTMLSpanElement;
  readonly #bar: HTMLElement;
  readonly #actions: HTMLDivElement;
  #videoTrack: MediaStreamTrack | undefined;
  #audioTrack: MediaStreamTrack | undefined;
  #meter: AudioMeter | undefined;
  #removable = false;
  #onRemove: (() => void) | undefined;

  constructor(spec: TileSpec) {
    this.#video = h('video', { autoplay: true, playsinline: true, muted: true, 'data-testid': 'tile-video' });
    this.#video.muted = true;
    if (spec.self) this.#video.classList.add('mirror');
    this.#audio = h('audio', { autoplay: true });
    this.#avatar = h('div', { class: 'avatar' }, h('span', {}, initials(spec.name)));
    this.#name = h('span', { class: 'name', 'data-testid': 'tile-name' }, spec.name);
    this.#bar = h('i');
    this.#actions = h('div', { class: 'tile-actions' });
    this.el = h(
      'div',
      {
        class: 'tile',
        'data-testid': 'stage-tile',
        'data-user-id': spec.id,
        'data-self': spec.self ? 'true' : undefined,
      },
      this.#video,
      this.#avatar,
      this.#actions,
      h(
        'div',
        { class: 'label' },
        this.#name,
        spec.self ? h('span', { class: 'you' }, 'You') : null,
        h('span', { class: 'meter', 'data-testid': 'audio-meter', title: 'Audio level' }, this.#bar),
      ),
      this.#audio,
    );
    this.update(spec);
  }

  update(spec: TileSpec): void {
    if (this.#name.textContent !== spec.name) this.#name.textContent = spec.name;
    if (spec.video !== this.#videoTrack) {
      this.#videoTrack = spec.video;
      this.#video.srcObject = spec.video ? new MediaStream([spec.video]) : null;
      if (spec.video) void this.#video.play().catch(() => undefined);
    }
    this.#avatar.hidden = !!spec.video;
    this.#video.hidden = !spec.video;
    if (spec.audio !== this.#audioTrack) {
      this.#audioTrack = spec.audio;
      this.#meter?.stop();
      this.#meter = undefined;
      // Never play our own microphone back. Remote audio must also play in a media element for
      // Chromium to feed WebAudio from it.
      this.#audio.srcObject = spec.audio && !spec.self ? new MediaStream([spec.audio]) : null;
      if (spec.audio && !spec.self) void this.#audio.play().catch(() => undefined);
      if (spec.audio) this.#meter = AudioMeter.attach(spec.audio, this.#bar, this.el);
    }
    const removable = !!spec.onRemove;
    this.#onRemove = spec.onRemove;
    if (removable !== this.#removable) {
      this.#removable = removable;
      this.#actions.replaceChildren();
      if (removable) {
        this.#actions.append(
          h(
            'button',
            {
              class: 'small',
              'data-testid': 'tile-remove-button',
              title: 'Remove from stage',
              onclick: () => this.#onRemove?.(),
            },
            'Remove',
          ),
        );
      }
    }
  }

  destroy(): void {
    this.#meter?.stop();
    this.#video.srcObject = null;
    this.#audio.srcObject = null;
    this.el.remove();
  }
}

/** The stage grid: reconciles tiles by participant id (keeps elements, so video never restarts). */
export class StageView {
  readonly #tiles = new Map<string, Tile>();
  readonly #empty: HTMLElement;

  constructor(
    private readonly grid: HTMLElement,
    emptyTitle: string,
    emptyText: string,
  ) {
    this.#empty = h(
      'div',
      { class: 'stage-empty', 'data-testid': 'stage-empty' },
      h('strong', {}, emptyTitle),
      emptyText,
    );
  }

  get size(): number {
    return this.#tiles.size;
  }

  render(specs: TileSpec[]): void {
    const keep = new Set(specs.map((s) => s.id));
    for (const [id, tile] of this.#tiles) {
      if (!keep.has(id)) {
        tile.destroy();
        this.#tiles.delete(id);
      }
    }
    for (const spec of specs) {
      let tile = this.#tiles.get(spec.id);
      if (tile) tile.update(spec);
      else {
        tile = new Tile(spec);
        this.#tiles.set(spec.id, tile);
      }
      this.grid.append(tile.el); // appending an attached node moves it: keeps the order of specs
    }
    if (specs.length === 0) this.grid.append(this.#empty);
    else this.#empty.remove();
  }

  clear(): void {
    this.render([]);
  }
}

// ------------------------------------------------------------------ local media (app-owned)
/**
 * The local camera and microphone, owned by the page (not the client): opened for the device
 * preview, then handed to the client when the participant goes on stage (`tracks` option of
 * joinMeeting), so the camera is opened once. The page stops them when leaving the stage.
 */
export class LocalMedia {
  #stream: MediaStream | undefined;
  #opening: Promise<MediaStream> | undefined;

  get stream(): MediaStream | undefined {
    return this.#stream;
  }

  get live(): boolean {
    return !!this.#stream && this.#stream.getTracks().some((t) => t.readyState === 'live');
  }

  /** Opens camera + microphone (once; concurrent callers share the request). */
  open(kinds: AllowedKinds = { audio: true, video: true }): Promise<MediaStream> {
    if (this.live && this.#stream) return Promise.resolve(this.#stream);
    if (this.#opening) return this.#opening;
    const opening = navigator.mediaDevices
      .getUserMedia({
        audio: kinds.audio,
        video: kinds.video ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false,
      })
      .then((stream) => {
        if (this.#opening !== opening) {
          // stop() was called while the permission prompt was open.
          for (const t of stream.getTracks()) t.stop();
          throw new StagegateError('INVALID_STATE', 'the camera was closed while it opened');
        }
        this.#stream = stream;
        return stream;
      })
      .finally(() => {
        if (this.#opening === opening) this.#opening = undefined;
      });
    this.#opening = opening;
    return opening;
  }

  /** For joinMeeting's `tracks` option: the preview's tracks, or freshly opened ones. */
  async tracksFor(allowed: AllowedKinds): Promise<LocalTracks> {
    const stream = await this.open(allowed);
    return {
      audio: allowed.audio ? stream.getAudioTracks()[0] : undefined,
      video: allowed.video ? stream.getVideoTracks()[0] : undefined,
    };
  }

  stop(): void {
    this.#opening = undefined;
    for (const t of this.#stream?.getTracks() ?? []) t.stop();
    this.#stream = undefined;
  }
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
            ? 'You were removed from the webinar.'
            : reason === 'room-closed' || reason === 'server-shutdown'
              ? 'The webinar has ended.'
              : 'The connection to the webinar was lost.';
    const el = notice(notices, 'error', text, 'disconnected');
    el.insertBefore(
      h('button', { class: 'small secondary', onclick: () => location.reload() }, texts.again),
      el.lastChild,
    );
    document.body.dataset.state = 'disconnected';
    onChange();
  });
}
