/**
 * What the pages show of media: audio level meters (WebAudio), video tiles, the stage grid, and
 * the camera and microphone the page opens itself (app-owned tracks handed to the thin client).
 *
 * Once a meeting is attached (`StageView.attach`), the grid tells the server how each remote
 * video is shown (size from a ResizeObserver, visibility from an IntersectionObserver: the
 * server picks the simulcast layer and pauses hidden ones), highlights the active speaker,
 * offers a grid / speaker view toggle, and shows a connection quality indicator per tile.
 */
import type { AllowedKinds, LocalTracks, Meeting } from '../index.js';
import { StagegateError } from '../../shared/errors.js';
import { h, initials } from './ui.js';
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
  readonly #quality: HTMLSpanElement;
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
    this.#name = h('span', { class: 'name', dir: 'auto', title: spec.name, 'data-testid': 'tile-name' }, spec.name);
    this.#bar = h('i');
    this.#actions = h('div', { class: 'tile-actions' });
    this.#quality = h(
      'span',
      {
        class: 'quality',
        'data-testid': 'tile-quality',
        'data-level': 'unknown',
        title: 'Connection quality: unknown',
      },
      h('i'),
      h('i'),
      h('i'),
    );
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
        this.#quality,
        h('span', { class: 'meter', 'data-testid': 'audio-meter', title: 'Audio level' }, this.#bar),
      ),
      this.#audio,
    );
    this.update(spec);
  }

  update(spec: TileSpec): void {
    if (this.#name.textContent !== spec.name) {
      this.#name.textContent = spec.name;
      this.#name.title = spec.name;
    }
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

  /** Connection quality, mediasoup's score 0..10 (the worst of the tile's streams). */
  setQuality(score: number): void {
    const level = score >= 8 ? 'good' : score >= 5 ? 'fair' : 'poor';
    this.#quality.dataset.level = level;
    this.#quality.dataset.score = String(score);
    this.#quality.title = `Connection quality: ${level} (${score}/10)`;
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
  readonly #toggle: HTMLButtonElement;
  #meeting: Meeting | undefined;
  #view: 'grid' | 'speaker' = 'grid';
  #speaker: string | undefined;
  /** Tiles in view (IntersectionObserver), by participant id. */
  readonly #inView = new Map<string, boolean>();
  /** Latest score per stream, by participant id then producer id (the tile shows the worst). */
  readonly #scores = new Map<string, Map<string, number>>();
  readonly #resize: ResizeObserver | undefined;
  readonly #intersect: IntersectionObserver | undefined;

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
    this.#toggle = h(
      'button',
      { class: 'small view-toggle', 'data-testid': 'view-toggle', hidden: true, onclick: () => this.toggleView() },
      'Speaker view',
    );
    grid.before(this.#toggle);
    const tileOf = (el: Element) => (el as HTMLElement).dataset.userId;
    if (typeof ResizeObserver !== 'undefined') {
      this.#resize = new ResizeObserver((entries) => {
        for (const e of entries) this.#report(tileOf(e.target));
      });
    }
    if (typeof IntersectionObserver !== 'undefined') {
      this.#intersect = new IntersectionObserver((entries) => {
        for (const e of entries) {
          const id = tileOf(e.target);
          if (!id) continue;
          this.#inView.set(id, e.isIntersecting);
          this.#report(id);
        }
      });
    }
  }

  /**
   * Follow a joined meeting: report tile sizes and visibility for its remote videos, highlight
   * its active speaker, show quality. Call once per meeting.
   */
  attach(meeting: Meeting): void {
    this.#meeting = meeting;
    this.#toggle.hidden = false;
    meeting.setDefaultVideoPreferences({ width: 320, height: 180 }); // start low; the tile raises it
    document.addEventListener('visibilitychange', () => {
      for (const id of this.#tiles.keys()) this.#report(id);
    });
    meeting.on('activeSpeaker', ({ userId }) => {
      this.#speaker = userId;
      this.#layout();
    });
    const score = (userId: string, key: string, value: number) => {
      let perUser = this.#scores.get(userId);
      if (!perUser) this.#scores.set(userId, (perUser = new Map()));
      perUser.set(key, value);
      this.#tiles.get(userId)?.setQuality(Math.min(...perUser.values()));
    };
    meeting.on('consumerScore', (e) => score(e.participantId, e.producerId, Math.min(e.score, e.producerScore)));
    meeting.on('producerScore', (e) => score(meeting.self.id, e.producerId, e.score));
    meeting.on('trackRemoved', (e) => this.#scores.get(e.participantId)?.delete(e.producerId));
  }

  /** Grid (every tile the same size) or speaker view (the active speaker large, a strip of others). */
  toggleView(): void {
    this.#view = this.#view === 'grid' ? 'speaker' : 'grid';
    this.#toggle.textContent = this.#view === 'grid' ? 'Speaker view' : 'Grid view';
    this.#layout();
  }

  get view(): 'grid' | 'speaker' {
    return this.#view;
  }

  #layout(): void {
    this.grid.classList.toggle('speaker-view', this.#view === 'speaker');
    const featured = this.#speaker && this.#tiles.has(this.#speaker) ? this.#speaker : this.#tiles.keys().next().value;
    for (const [id, tile] of this.#tiles) {
      tile.el.classList.toggle('active-speaker', id === this.#speaker);
      tile.el.classList.toggle('featured', this.#view === 'speaker' && id === featured);
      tile.el.dataset.activeSpeaker = id === this.#speaker ? 'true' : 'false';
    }
  }

  /** Tells the server how a remote tile's camera video is shown now. */
  #report(id: string | undefined): void {
    const m = this.#meeting;
    const tile = id && this.#tiles.get(id);
    if (!m || !id || !tile || tile.el.dataset.self) return;
    const producer = m.participants.get(id)?.producers.find((p) => p.kind === 'video' && p.source === 'video');
    if (!producer) return;
    const rect = tile.el.getBoundingClientRect();
    const visible = (this.#inView.get(id) ?? true) && rect.width > 0 && document.visibilityState !== 'hidden';
    m.setVideoVisible(producer.id, visible);
    if (visible) m.setVideoSize(producer.id, { width: rect.width, height: rect.height });
  }

  get size(): number {
    return this.#tiles.size;
  }

  render(specs: TileSpec[]): void {
    const keep = new Set(specs.map((s) => s.id));
    for (const [id, tile] of this.#tiles) {
      if (!keep.has(id)) {
        this.#resize?.unobserve(tile.el);
        this.#intersect?.unobserve(tile.el);
        this.#inView.delete(id);
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
        this.#resize?.observe(tile.el);
        this.#intersect?.observe(tile.el);
      }
      this.grid.append(tile.el); // appending an attached node moves it: keeps the order of specs
    }
    if (specs.length === 0) this.grid.append(this.#empty);
    else this.#empty.remove();
    this.#layout();
    for (const id of this.#tiles.keys()) this.#report(id); // a video may have arrived
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

  /** The kinds the open stream carries ("audio only" when the camera is blocked or missing). */
  get kinds(): { audio: boolean; video: boolean } {
    const live = (this.#stream?.getTracks() ?? []).filter((t) => t.readyState === 'live');
    return { audio: live.some((t) => t.kind === 'audio'), video: live.some((t) => t.kind === 'video') };
  }

  /**
   * Opens camera + microphone (once; concurrent callers share the request). When both cannot
   * open (a permission denied for one, or only one device plugged in), opens whichever one
   * works; throws a DeviceProblem when none does.
   */
  open(kinds: AllowedKinds = { audio: true, video: true }): Promise<MediaStream> {
    if (this.live && this.#stream) return Promise.resolve(this.#stream);
    if (this.#opening) return this.#opening;
    const opening = openBest(kinds)
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

/** Why the camera and microphone could not open, and what the person can do about it. */
export class DeviceProblem extends Error {
  constructor(
    /** 'blocked': the browser (or the person) denied access; 'missing': no device; 'busy': in use elsewhere. */
    readonly kind: 'blocked' | 'missing' | 'busy',
    readonly title: string,
    readonly fix: string,
  ) {
    super(`${title} ${fix}`);
  }
}

function problemOf(err: unknown): DeviceProblem {
  const name = err instanceof Error ? err.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError')
    return new DeviceProblem(
      'blocked',
      'Your camera and microphone are blocked.',
      'Allow them for this site (the camera icon in the address bar, or the site settings), then press Retry.',
    );
  if (name === 'NotReadableError' || name === 'AbortError')
    return new DeviceProblem(
      'busy',
      'Your camera or microphone is in use by another app.',
      'Close the other app (or tab) that uses it, then press Retry.',
    );
  return new DeviceProblem(
    'missing',
    'No camera or microphone was found.',
    'Plug one in (or turn it on), then press Retry.',
  );
}

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 } };

/** Both kinds if possible, else whichever one opens (audio only, video only); a DeviceProblem if none. */
async function openBest(kinds: AllowedKinds): Promise<MediaStream> {
  const gum = (c: MediaStreamConstraints) => navigator.mediaDevices.getUserMedia(c);
  try {
    return await gum({ audio: kinds.audio, video: kinds.video ? VIDEO : false });
  } catch (err) {
    if (!(kinds.audio && kinds.video)) throw problemOf(err);
    const [a, v] = await Promise.allSettled([gum({ audio: true }), gum({ video: VIDEO })]);
    const tracks = [a, v].flatMap((r) => (r.status === 'fulfilled' ? r.value.getTracks() : []));
    if (!tracks.length) throw problemOf(err);
    return new MediaStream(tracks);
  }
}
