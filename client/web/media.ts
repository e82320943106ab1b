/**
 * What the pages show of media: audio level meters (WebAudio), video tiles, the stage grid, and
 * the camera and microphone the page opens itself (app-owned tracks handed to the thin client).
 *
 * Once a meeting is attached (`StageView.attach`), the grid tells the server how each remote
 * video is shown (size from a ResizeObserver, visibility from an IntersectionObserver: the
 * server picks the simulcast layer and pauses hidden ones), highlights the active speaker,
 * offers a grid / speaker view toggle, and shows a connection quality indicator per tile.
 */
import type { AllowedKinds, LocalTracks, MediaSource, Meeting } from '../index.js';
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

  /** The open track of a kind, if any. */
  track(kind: 'audio' | 'video'): MediaStreamTrack | undefined {
    return this.#stream?.getTracks().find((t) => t.kind === kind && t.readyState === 'live');
  }

  /** The device the open track of `kind` comes from. */
  deviceId(kind: 'audio' | 'video'): string | undefined {
    return this.track(kind)?.getSettings().deviceId;
  }

  /**
   * Opens `deviceId` for `kind` and puts its track in the stream in place of the old one, which
   * is returned (the caller stops it once the live producer sends the new one).
   */
  async switchDevice(
    kind: 'audio' | 'video',
    deviceId: string,
  ): Promise<{ track: MediaStreamTrack; old: MediaStreamTrack | undefined }> {
    const stream = this.#stream;
    if (!stream) throw new StagegateError('INVALID_STATE', 'the camera and microphone are not open');
    const wanted = { deviceId: { exact: deviceId } };
    let opened: MediaStream;
    try {
      opened = await navigator.mediaDevices.getUserMedia(
        kind === 'audio' ? { audio: wanted } : { video: { ...VIDEO, ...wanted } },
      );
    } catch (err) {
      throw problemOf(err);
    }
    const track = opened.getTracks()[0]!;
    if (this.#stream !== stream) {
      track.stop(); // closed meanwhile
      throw new StagegateError('INVALID_STATE', 'the camera was closed while the device switched');
    }
    const old = this.track(kind);
    if (old) {
      track.enabled = old.enabled; // a muted microphone stays muted
      stream.removeTrack(old);
    }
    stream.addTrack(track);
    return { track, old };
  }
}

/** The cameras or microphones the browser offers (labels once a device was allowed). */
export async function listDevices(kind: 'audioinput' | 'videoinput'): Promise<MediaDeviceInfo[]> {
  const all = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []);
  return (all ?? []).filter((d) => d.kind === kind && d.deviceId);
}

// ------------------------------------------------------------------ media controls
/** What the controls say when the host holds a source. */
const HELD_TEXT: Record<MediaSource, string> = {
  audio: 'Muted by the host',
  video: 'Camera turned off by the host',
  screenshare: 'Screen share stopped by the host',
};

export interface MediaControlsOptions {
  local: LocalMedia;
  /** An action failed: tell the person (a toast). */
  onError: (what: string, err: unknown) => void;
  /** Something the page shows changed (a mute, a share, a hold). */
  onChange: () => void;
}

/**
 * The participant's own media controls, for the viewer page and the host console: microphone
 * mute, camera off, screen share (only when the preset allows it), microphone and camera
 * pickers that switch the live track, and a microphone level meter. Mute and camera off pause
 * the producer on the server (viewers receive no bytes). A source the host holds shows as held
 * ("Muted by the host") with "Ask to unmute"; its button stays disabled until the host allows.
 *
 * One persistent element (`el`): pages re-render around it and call `update()`.
 */
export class MediaControls {
  readonly el: HTMLDivElement;
  readonly #o: MediaControlsOptions;
  #meeting: Meeting | undefined;
  /** Held sources we asked the host to allow (pending). */
  readonly #asked = new Set<MediaSource>();
  /** Sources the host allowed again since they were held (until we resume or a new hold). */
  readonly #allowed = new Set<MediaSource>();
  #screen: MediaStreamTrack | undefined;
  #busy = false;
  #meter: AudioMeter | undefined;
  readonly #buttons: HTMLDivElement;
  readonly #held: HTMLDivElement;
  readonly #pickers: HTMLDivElement;
  readonly #mic: HTMLSelectElement;
  readonly #cam: HTMLSelectElement;
  readonly #meterEl: HTMLSpanElement;
  readonly #meterBar: HTMLElement;

  constructor(o: MediaControlsOptions) {
    this.#o = o;
    this.#buttons = h('div', {
      class: 'btn-row media-buttons',
      role: 'group',
      'aria-label': 'Your microphone and camera',
    });
    this.#held = h('div', { class: 'held-box', 'data-testid': 'held-box' });
    this.#mic = h('select', { 'data-testid': 'mic-select', onchange: () => void this.#switch('audio', this.#mic) });
    this.#cam = h('select', { 'data-testid': 'camera-select', onchange: () => void this.#switch('video', this.#cam) });
    this.#meterBar = h('i');
    this.#meterEl = h(
      'span',
      { class: 'meter mic-meter', 'data-testid': 'mic-meter', 'aria-hidden': 'true', title: 'Microphone level' },
      this.#meterBar,
    );
    this.#pickers = h(
      'div',
      { class: 'device-pickers' },
      h('label', { class: 'field' }, 'Microphone', this.#mic),
      h('label', { class: 'field' }, 'Camera', this.#cam),
      h('div', { class: 'mic-level' }, h('span', { class: 'faint-strong' }, 'Mic level'), this.#meterEl),
    );
    this.el = h(
      'div',
      { class: 'media-controls', 'data-testid': 'media-controls' },
      this.#held,
      this.#buttons,
      this.#pickers,
    );
    navigator.mediaDevices?.addEventListener?.('devicechange', () => void this.#fillPickers());
  }

  /** Follow a joined meeting's holds and stage status. Call once. */
  attach(meeting: Meeting): void {
    this.#meeting = meeting;
    const self = () => meeting.self.id;
    meeting.stage.on('mutedByHost', ({ userId, sources }) => {
      if (userId !== self()) return;
      for (const s of sources) {
        this.#asked.delete(s);
        this.#allowed.delete(s);
      }
      if (sources.includes('screenshare')) this.#endScreen();
      this.#o.onChange();
    });
    meeting.stage.on('unmuteAllowed', ({ userId, sources }) => {
      if (userId !== self()) return;
      for (const s of sources) {
        this.#asked.delete(s);
        this.#allowed.add(s);
      }
      this.#o.onChange();
    });
    meeting.stage.on('stageStatusUpdate', ({ new: now }) => {
      if (now === 'ON_STAGE') return;
      this.#asked.clear();
      this.#allowed.clear();
      this.#endScreen();
    });
    meeting.on('producerClosedByServer', () => {
      if (this.#screen && !this.#sharing()) this.#endScreen();
    });
  }

  /**
   * Redraw for `where`: 'preview' (pickers and the meter) or 'stage' (everything). The pickers
   * are filled once the devices are open (labels need the permission).
   */
  update(where: 'preview' | 'stage'): void {
    const m = this.#meeting;
    if (!m) return;
    this.#updateMeter();
    void this.#fillPickers();
    const stage = where === 'stage' && m.stage.status === 'ON_STAGE';
    this.el.dataset.where = stage ? 'stage' : 'preview';
    const off = this.#busy || m.connectionState !== 'connected';
    const buttons: HTMLElement[] = [];
    const heldNotes: HTMLElement[] = [];
    if (stage) {
      for (const source of ['audio', 'video'] as const) {
        if (!m.producers || ![...m.producers.values()].some((p) => p.source === source)) continue;
        const held = m.stage.held.includes(source);
        const paused = held || !!m.stage.isPaused(source);
        const [on, offText, testid] =
          source === 'audio' ? ['Mute', 'Unmute', 'mic-button'] : ['Stop video', 'Start video', 'camera-button'];
        buttons.push(
          h(
            'button',
            {
              class: `media-toggle ${paused ? 'secondary is-off' : 'secondary'}`,
              'data-testid': testid,
              'data-state': held ? 'held' : paused ? 'off' : 'on',
              'aria-pressed': paused ? 'true' : 'false',
              disabled: off || held,
              title: held ? HELD_TEXT[source] : undefined,
              onclick: () =>
                void this.#act(paused ? `Could not ${offText.toLowerCase()}` : `Could not ${on.toLowerCase()}`, () =>
                  paused ? m.stage.resumeSource(source) : m.stage.pauseSource(source),
                ),
            },
            paused ? offText : on,
          ),
        );
        if (held) heldNotes.push(this.#heldNote(source, off));
        else if (this.#allowed.has(source) && paused) {
          heldNotes.push(
            h(
              'p',
              { class: 'notice ok', role: 'status', 'data-testid': 'unmute-allowed', 'data-source': source },
              source === 'audio'
                ? 'The host allowed you to unmute. Press Unmute when you are ready.'
                : 'The host allowed your camera again. Press Start video when you are ready.',
            ),
          );
        }
      }
      if (m.self.preset.media.screenshare === 'ALLOWED') {
        const sharing = this.#sharing();
        buttons.push(
          h(
            'button',
            {
              class: `media-toggle ${sharing ? 'danger' : 'secondary'}`,
              'data-testid': 'share-button',
              'data-state': sharing ? 'on' : 'off',
              'aria-pressed': sharing ? 'true' : 'false',
              disabled: off || m.stage.held.includes('screenshare'),
              onclick: () =>
                void (sharing ? this.#act('Could not stop sharing', () => this.stopShare()) : this.#share()),
            },
            sharing ? 'Stop sharing' : 'Share screen',
          ),
        );
        if (m.stage.held.includes('screenshare')) heldNotes.push(this.#heldNote('screenshare', off));
      }
    }
    this.#buttons.hidden = !buttons.length;
    this.#buttons.replaceChildren(...buttons);
    this.#held.hidden = !heldNotes.length;
    this.#held.replaceChildren(...heldNotes);
    const { local } = this.#o;
    this.#pickers.hidden = !local.live;
  }

  #heldNote(source: MediaSource, off: boolean): HTMLElement {
    const m = this.#meeting!;
    const asked = this.#asked.has(source);
    return h(
      'div',
      { class: 'notice warn held', role: 'status', 'data-testid': 'held-note', 'data-source': source },
      h(
        'span',
        { class: 'grow' },
        h('strong', {}, HELD_TEXT[source]),
        asked ? '. Waiting for the host to allow it…' : '.',
      ),
      asked
        ? h('span', { class: 'badge', 'data-testid': 'unmute-pending' }, 'Asked')
        : h(
            'button',
            {
              class: 'small',
              'data-testid': 'ask-unmute-button',
              'data-source': source,
              disabled: off,
              onclick: () =>
                void this.#act('Could not ask to unmute', async () => {
                  await m.stage.requestUnmute(source);
                  this.#asked.add(source);
                }),
            },
            source === 'audio' ? 'Ask to unmute' : 'Ask to turn it on',
          ),
    );
  }

  /** Whether our screen is being published. */
  #sharing(): boolean {
    return [...(this.#meeting?.producers.values() ?? [])].some((p) => p.source === 'screenshare');
  }

  async #share(): Promise<void> {
    const m = this.#meeting;
    if (!m) return;
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      if (err instanceof Error && err.name === 'NotAllowedError') return; // the person cancelled
      return this.#o.onError('Could not share your screen', err);
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    this.#screen = track;
    // "Stop sharing" in the browser's own bar
    track.addEventListener('ended', () => void this.stopShare());
    await this.#act('Could not share your screen', () => m.stage.shareScreen(track));
    if (!this.#sharing()) this.#endScreen();
  }

  /** Stops the screen share (also when the browser's "Stop sharing" ended the track). */
  async stopShare(): Promise<void> {
    const m = this.#meeting;
    this.#endScreen();
    await m?.stage.stopScreenShare();
    this.#o.onChange();
  }

  #endScreen(): void {
    this.#screen?.stop();
    this.#screen = undefined;
  }

  async #act(what: string, action: () => Promise<unknown>): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    this.#o.onChange();
    try {
      await action();
    } catch (err) {
      this.#o.onError(what, err);
    } finally {
      this.#busy = false;
      this.#o.onChange();
    }
  }

  /** Switches the microphone or camera; on stage the producer sends the new track at once. */
  async #switch(kind: 'audio' | 'video', select: HTMLSelectElement): Promise<void> {
    const id = select.value;
    const { local } = this.#o;
    if (!id || id === local.deviceId(kind)) return;
    await this.#act(kind === 'audio' ? 'Could not switch the microphone' : 'Could not switch the camera', async () => {
      const { track, old } = await local.switchDevice(kind, id);
      const m = this.#meeting;
      if (m && [...m.producers.values()].some((p) => p.source === kind)) await m.stage.replaceTrack(kind, track);
      else m?.previewChanged(); // not live yet: the camera's sender is prepared for the new one
      old?.stop();
    });
  }

  async #fillPickers(): Promise<void> {
    const { local } = this.#o;
    if (!local.live) return;
    for (const [kind, select] of [
      ['audio', this.#mic],
      ['video', this.#cam],
    ] as const) {
      const devices = await listDevices(kind === 'audio' ? 'audioinput' : 'videoinput');
      const current = local.deviceId(kind);
      const key = devices.map((d) => `${d.deviceId}:${d.label}`).join('|') + `#${current ?? ''}`;
      if (select.dataset.key === key) continue;
      select.dataset.key = key;
      select.replaceChildren(
        ...devices.map((d, i) =>
          h(
            'option',
            { value: d.deviceId, selected: d.deviceId === current },
            d.label || `${kind === 'audio' ? 'Microphone' : 'Camera'} ${i + 1}`,
          ),
        ),
      );
      if (current) select.value = current;
      (select.closest('label') as HTMLElement).hidden = !local.track(kind) || !devices.length;
    }
  }

  /** The meter follows the open microphone track (the preview's, which is also the live one). */
  #updateMeter(): void {
    const track = this.#o.local.track('audio');
    if (this.#meter?.track === track) return;
    this.#meter?.stop();
    this.#meter = track ? AudioMeter.attach(track, this.#meterBar, this.#meterEl) : undefined;
    (this.#meterEl.parentElement as HTMLElement).hidden = !track;
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
