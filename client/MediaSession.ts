/**
 * mediasoup-client side of one meeting: the Device, one recv transport, at most one send
 * transport, and the request plumbing between their events and the server.
 *
 * It does not decide anything about the stage: `Publisher` decides when to send, `Subscriber`
 * what to receive. Every close here is local and idempotent (the server closes its side itself
 * on stage changes, or on disconnect).
 */
import { Device, type types } from 'mediasoup-client';
import type { ConsumerOptions, MediaKind, RequestData, TransportOptions } from '../shared/protocol.js';
import type { MediaSource } from '../shared/stage.js';
import { stagegateError, toStagegateError } from './errors.js';
import type { Signaling } from './Signaling.js';

export type HandlerFactory = types.HandlerFactory;

/** The `produce` request of a sender negotiated ahead (`prepareProduce`), held until it is sent. */
interface HeldProduce {
  readonly transport: types.Transport;
  readonly source: MediaSource;
  /** The track it was negotiated for. */
  readonly track: MediaStreamTrack;
  /** Its encodings' shape (JSON): another track publishes through it only with the same shape. */
  readonly layout: string;
  readonly sender: RTCRtpSender | undefined;
  readonly request: { kind: MediaKind; rtpParameters: types.RtpParameters; source: MediaSource };
  readonly callback: (data: { id: string }) => void;
  readonly errback: (error: Error) => void;
  /** mediasoup-client's `transport.produce()`: resolves once `callback` is called. */
  readonly producer: Promise<types.Producer>;
  /** The held request, sent ahead of ON_STAGE right behind `stage.join` (`sendPrepared`). */
  sent?: Promise<{ id: string }> | undefined;
}

/** What `prepared` tells of a held sender. */
export interface PreparedSender {
  readonly source: MediaSource;
  readonly layout: string;
}

export class MediaSession {
  #device: Device;
  /** The router's RTP capabilities the Device was loaded with (JSON), to detect a new router. */
  #routerCapabilities: string;
  readonly #handlerFactory: HandlerFactory | undefined;
  #recv: types.Transport | undefined;
  #send: types.Transport | undefined;
  /** A send transport being created; shared by concurrent callers. */
  #sendCreating: Promise<types.Transport> | undefined;
  /** Bumped by `closeSendTransport()`: a creation started before it must not survive. */
  #sendEpoch = 0;
  /** A sender negotiated ahead, sending nothing, its `produce` request held (`prepareProduce`). */
  #held: HeldProduce | undefined;
  /** The next `produce` event of this transport is held, not sent: `prepareProduce` waits for it. */
  #holding:
    | { transport: types.Transport; hold: (h: Pick<HeldProduce, 'request' | 'callback' | 'errback'>) => void }
    | undefined;
  #closed = false;
  /** Publish a camera as simulcast layers (JoinMeetingOptions.simulcast). */
  simulcast = true;

  private constructor(
    device: Device,
    routerCapabilities: unknown,
    handlerFactory: HandlerFactory | undefined,
    private readonly signaling: Signaling,
  ) {
    this.#device = device;
    this.#routerCapabilities = JSON.stringify(routerCapabilities);
    this.#handlerFactory = handlerFactory;
  }

  /** Creates the Device (throws UNSUPPORTED when the browser has no WebRTC handler). */
  static createDevice(handlerFactory?: HandlerFactory): Device {
    try {
      return handlerFactory ? new Device({ handlerFactory }) : new Device();
    } catch (err) {
      throw toStagegateError(err, 'cannot create a mediasoup Device');
    }
  }

  /** Loads the Device with the router's RTP capabilities. */
  static async load(device: Device, signaling: Signaling, handlerFactory?: HandlerFactory): Promise<MediaSession> {
    const { rtpCapabilities } = await signaling.request('getRouterRtpCapabilities');
    await loadDevice(device, rtpCapabilities);
    return new MediaSession(device, rtpCapabilities, handlerFactory, signaling);
  }

  get device(): Device {
    return this.#device;
  }

  /**
   * After a reconnect: the router's capabilities again. The same ones keep the Device; others
   * (a different router) get a new Device. Either way the caller replaces the transports.
   */
  async reload(routerCapabilities: unknown): Promise<void> {
    this.#assertOpen();
    const json = JSON.stringify(routerCapabilities);
    if (json === this.#routerCapabilities) return;
    const device = MediaSession.createDevice(this.#handlerFactory);
    await loadDevice(device, routerCapabilities);
    this.#assertOpen();
    this.closeSendTransport();
    this.closeRecvTransport();
    this.#device = device;
    this.#routerCapabilities = json;
  }

  get recvTransport(): types.Transport | undefined {
    return this.#recv;
  }

  get sendTransport(): types.Transport | undefined {
    return this.#send && !this.#send.closed ? this.#send : undefined;
  }

  canProduce(kind: MediaKind): boolean {
    return this.#device.loaded && this.#device.canProduce(kind);
  }

  async createRecvTransport(): Promise<types.Transport> {
    this.#assertOpen();
    if (this.#recv && !this.#recv.closed) return this.#recv;
    const options = await this.signaling.request('createTransport', { direction: 'recv' });
    this.#assertOpen();
    const transport = this.#device.createRecvTransport(transportOptions(options));
    this.#wireConnect(transport);
    this.#recv = transport;
    return transport;
  }

  /** The send transport, created if missing. The server allows it in ACCEPTED and ON_STAGE only. */
  ensureSendTransport(): Promise<types.Transport> {
    this.#assertOpen();
    const current = this.sendTransport;
    if (current) return Promise.resolve(current);
    if (this.#sendCreating) return this.#sendCreating;
    const epoch = this.#sendEpoch;
    const creating = (async () => {
      const options = await this.signaling.request('createTransport', { direction: 'send' });
      if (this.#closed || epoch !== this.#sendEpoch) {
        throw stagegateError('INVALID_STATE', 'the stage status changed while the send transport was created');
      }
      const transport = this.#device.createSendTransport(transportOptions(options));
      this.#wireConnect(transport);
      transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
        const source = appData.source as MediaSource;
        if (this.#holding?.transport === transport) {
          const { hold } = this.#holding;
          this.#holding = undefined;
          hold({ request: { kind, rtpParameters, source }, callback, errback });
          return;
        }
        this.#requestProduce(transport, { kind, rtpParameters, source }).then(({ id }) => callback({ id }), errback);
      });
      this.#send = transport;
      return transport;
    })();
    this.#sendCreating = creating;
    const clear = () => {
      if (this.#sendCreating === creating) this.#sendCreating = undefined;
    };
    creating.then(clear, clear);
    return creating;
  }

  /**
   * Negotiates a sender for `track` now, before the participant may publish (ACCEPTED): the
   * transceiver is added with no track (`replaceTrack(null)` before the offer), so nothing is
   * encoded or sent, and the transport's DTLS is connected. The server request is held: no
   * producer exists until `producePrepared()` sends it once ON_STAGE. What that saves at
   * `join()`: the local SDP round (offer, answer) and the first produce's DTLS handshake.
   * At most one is held (mediasoup-client runs a transport's produces one at a time, so a held
   * one blocks the next until it is sent or cancelled). Rejects as `produce` would.
   */
  async prepareProduce(track: MediaStreamTrack, source: MediaSource): Promise<void> {
    if (this.prepared) return;
    const transport = await this.ensureSendTransport();
    if (this.prepared || this.#holding) return;
    void this.cancelPrepared(); // one held on a transport closed since
    let sender: RTCRtpSender | undefined;
    const options = videoOptions(track, source, this.simulcast);
    const layout = layoutOf(options);
    const requested = new Promise<Pick<HeldProduce, 'request' | 'callback' | 'errback'>>((resolve) => {
      this.#holding = { transport, hold: resolve };
    });
    const producer = transport.produce({
      track,
      stopTracks: false,
      appData: { source },
      ...options,
      onRtpSender: (s) => {
        sender = s;
        void s.replaceTrack(null).catch(() => undefined);
      },
    });
    producer.catch(() => undefined); // a cancel rejects it: handled by whoever cancels
    let held: Pick<HeldProduce, 'request' | 'callback' | 'errback'>;
    try {
      held = await Promise.race([
        requested,
        producer.then(() => {
          throw stagegateError('INTERNAL', 'the prepared produce went out unheld');
        }),
      ]);
    } catch (err) {
      this.#stopHolding(transport);
      throw toStagegateError(err, `cannot prepare ${source}`);
    }
    this.#held = { ...held, transport, source, track, layout, sender, producer };
    // Closed meanwhile: give it up at once.
    if (transport.closed || this.#send !== transport) void this.cancelPrepared();
  }

  #stopHolding(transport: types.Transport): void {
    if (this.#holding?.transport === transport) this.#holding = undefined;
  }

  /** The sender prepared ahead (`prepareProduce`), if one is held. */
  get prepared(): PreparedSender | undefined {
    const h = this.#held;
    return h && !h.transport.closed ? { source: h.source, layout: h.layout } : undefined;
  }

  /** The encodings' shape `track` would be published with as `source` (compare with `prepared.layout`). */
  layoutFor(track: MediaStreamTrack, source: MediaSource): string {
    return layoutOf(videoOptions(track, source, this.simulcast));
  }

  /**
   * Publishes through the prepared sender: sends the held request, and once the server's producer
   * exists gives the sender `track` (the encoder starts on its next frame). Rejects with the
   * server's refusal; the prepared sender is gone either way.
   */
  async producePrepared(track: MediaStreamTrack): Promise<types.Producer> {
    const h = this.#held;
    if (!h || h.transport.closed) throw stagegateError('INVALID_STATE', 'no prepared sender');
    this.#held = undefined;
    let id: string;
    try {
      // Sent ahead and refused (the stage.join before it was): ask again, ON_STAGE now.
      const early = h.sent;
      ({ id } = early ? await early.catch(() => this.#requestHeld(h)) : await this.#requestHeld(h));
    } catch (err) {
      h.errback(err instanceof Error ? err : new Error(String(err)));
      throw toStagegateError(err, `cannot publish ${h.source}`);
    }
    void h.sender?.replaceTrack(track).catch(() => undefined);
    h.callback({ id });
    let producer: types.Producer;
    try {
      producer = await h.producer;
    } catch (err) {
      throw toStagegateError(err, `cannot publish ${h.source}`);
    }
    if (track !== h.track) await producer.replaceTrack({ track });
    return producer;
  }

  /**
   * Sends the held request now, before the participant is ON_STAGE: the caller has just sent
   * `stage.join` on the same socket, and the server handles a socket's requests in order (a
   * `stage.join` is decided before the next request runs), so the producer is created right
   * after it, one round trip sooner; if the join is refused, so is this (no producer), and
   * `producePrepared` asks again. The sender gets its track only in `producePrepared`.
   */
  sendPrepared(): void {
    const h = this.#held;
    if (!h || h.sent || h.transport.closed) return;
    const sent = this.#requestHeld(h);
    h.sent = sent;
    // refused (the join before it was): the next join sends it again
    sent.catch(() => {
      if (h.sent === sent) h.sent = undefined;
    });
  }

  /**
   * The status left ON_STAGE: a producer the early request made is gone with it (the server closes
   * them all), so the held request is to be sent again next time.
   */
  forgetPreparedRequest(): void {
    if (this.#held) this.#held.sent = undefined;
  }

  #requestHeld(h: HeldProduce): Promise<{ id: string }> {
    return this.#requestProduce(h.transport, h.request);
  }

  /** The server's `produce` for what mediasoup-client's `produce` event carries. */
  #requestProduce(transport: types.Transport, r: HeldProduce['request']): Promise<{ id: string }> {
    return this.signaling.request('produce', {
      transportId: transport.id,
      kind: r.kind,
      rtpParameters: r.rtpParameters as unknown as RequestData<'produce'>['rtpParameters'],
      source: r.source,
    });
  }

  /**
   * Gives up the prepared sender (its transceiver is stopped; nothing was sent). If its request
   * went ahead and made a producer, that producer is closed on the server (resolves once the
   * server answered, so a produce of the same source after it is not refused as a second one).
   */
  async cancelPrepared(): Promise<void> {
    const h = this.#held;
    this.#held = undefined;
    if (!h) return;
    h.errback(stagegateError('INVALID_STATE', 'the prepared sender was not published'));
    const made = await h.sent?.catch(() => undefined);
    if (made && !h.transport.closed) await this.closeProducer(made.id).catch(() => undefined);
  }

  /** Closes the local send transport (and its producers). The server closes its own side. */
  closeSendTransport(): void {
    void this.cancelPrepared();
    this.#holding = undefined;
    this.#sendEpoch++;
    this.#sendCreating = undefined;
    this.#send?.close();
    this.#send = undefined;
  }

  /**
   * Publishes a track. `stopTracks: false`: the caller decides which tracks to stop.
   * Rejects with the server's refusal (e.g. INVALID_STATE when no longer ON_STAGE).
   */
  async produce(track: MediaStreamTrack, source: MediaSource): Promise<types.Producer> {
    const transport = await this.ensureSendTransport();
    try {
      return await transport.produce({
        track,
        stopTracks: false,
        appData: { source },
        ...videoOptions(track, source, this.simulcast),
      });
    } catch (err) {
      throw toStagegateError(err, `cannot publish ${source}`);
    }
  }

  /** Asks the server for a (paused) consumer of `producerId` and creates it locally. */
  async consume(producerId: string): Promise<{ consumer: types.Consumer; options: ConsumerOptions }> {
    const transport = this.#recv;
    if (!transport || transport.closed) throw stagegateError('INVALID_STATE', 'no recv transport');
    const options = await this.signaling.request('consume', { producerId });
    return { options, consumer: await this.createConsumer(options) };
  }

  /** The local half of `consume`, for options the server already answered. */
  async createConsumer(options: ConsumerOptions): Promise<types.Consumer> {
    const transport = this.#recv;
    if (!transport || transport.closed) throw stagegateError('INVALID_STATE', 'no recv transport');
    try {
      return await transport.consume({
        id: options.id,
        producerId: options.producerId,
        kind: options.kind,
        rtpParameters: options.rtpParameters as types.RtpParameters,
        appData: { userId: options.userId, source: options.source },
      });
    } catch (err) {
      throw toStagegateError(err, `cannot receive producer ${options.producerId}`);
    }
  }

  async resumeConsumer(consumerId: string): Promise<void> {
    await this.signaling.request('resumeConsumer', { consumerId });
  }

  /** How a received video is shown (size in device pixels, visibility): see `setConsumerPreferences`. */
  async setConsumerPreferences(consumerId: string, prefs: VideoPreferences): Promise<void> {
    await this.signaling.request('setConsumerPreferences', { consumerId, ...prefs });
  }

  /** Pauses one of our producers on the server (its consumers get no RTP). */
  async pauseProducer(producerId: string): Promise<void> {
    await this.signaling.request('pauseProducer', { producerId });
  }

  /** Tells the server to close one of our producers (not needed when the server closed it). */
  async closeProducer(producerId: string): Promise<void> {
    await this.signaling.request('closeProducer', { producerId });
  }

  /** Closes the local recv transport (and its consumers). */
  closeRecvTransport(): void {
    this.#recv?.close();
    this.#recv = undefined;
  }

  /** Closes both transports (and with them every producer and consumer). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.closeSendTransport();
    this.closeRecvTransport();
  }

  #wireConnect(transport: types.Transport): void {
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      this.signaling
        .request('connectTransport', {
          transportId: transport.id,
          dtlsParameters: dtlsParameters as RequestData<'connectTransport'>['dtlsParameters'],
        })
        .then(() => callback(), errback);
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw stagegateError('INVALID_STATE', 'the meeting was left');
  }
}

export interface VideoPreferences {
  width?: number;
  height?: number;
  visible?: boolean;
}

/**
 * Simulcast ladder of a camera: each layer half the size of the next, the top one the track's
 * own size. Three layers from 540 lines up (1280x720 → 320x180, 640x360, 1280x720), two from
 * 270, else one stream (as Chromium's own simulcast limits by resolution). Each layer carries
 * three temporal layers (L1T3), so the SFU can also halve or quarter the frame rate.
 */
const CAMERA_LAYERS = [
  { minHeight: 540, layers: 3 },
  { minHeight: 270, layers: 2 },
] as const;
/** Bitrate cap of a layer by its height: low enough that the lowest one fits a ~150 kbit/s downlink. */
function layerBitrate(height: number): number {
  if (height <= 200) return 90_000;
  if (height <= 400) return 350_000;
  return 1_200_000;
}

/**
 * Encoder settings by source: a camera as simulcast (see CAMERA_LAYERS); a screenshare as one
 * full-resolution stream tuned for text (contentHint 'text': sharp details, frames dropped
 * rather than resolution; at most 15 fps); audio as it is.
 */
export function videoOptions(
  track: MediaStreamTrack,
  source: MediaSource,
  simulcast = true,
): Partial<types.ProducerOptions> {
  if (source === 'screenshare') {
    if ('contentHint' in track) track.contentHint = 'text';
    return { encodings: [{ maxBitrate: 2_500_000, maxFramerate: 15 }] };
  }
  if (source !== 'video' || !simulcast) return {};
  const height = track.getSettings?.().height ?? 0;
  const layers = CAMERA_LAYERS.find((l) => height >= l.minHeight)?.layers ?? 1;
  if (layers === 1) return {};
  const encodings: types.RtpEncodingParameters[] = [];
  for (let i = 0; i < layers; i++) {
    const scale = 2 ** (layers - 1 - i);
    encodings.push({ scaleResolutionDownBy: scale, maxBitrate: layerBitrate(height / scale), scalabilityMode: 'L1T3' });
  }
  return { encodings };
}

function layoutOf(options: Partial<types.ProducerOptions>): string {
  return JSON.stringify(options.encodings ?? []);
}

async function loadDevice(device: Device, routerRtpCapabilities: unknown): Promise<void> {
  try {
    await device.load({ routerRtpCapabilities: routerRtpCapabilities as types.RtpCapabilities });
  } catch (err) {
    throw toStagegateError(err, 'cannot load the mediasoup Device');
  }
}

function transportOptions(o: TransportOptions): types.TransportOptions {
  return {
    id: o.id,
    iceParameters: o.iceParameters as types.IceParameters,
    iceCandidates: o.iceCandidates as types.IceCandidate[],
    dtlsParameters: o.dtlsParameters as types.DtlsParameters,
  };
}
