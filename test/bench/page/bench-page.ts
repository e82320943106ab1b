/**
 * Browser side of the benchmarks (bundled by esbuild, loaded in headless Chromium by page.ts).
 * One page hosts both ends: a speaker and a viewer, so the latency from the speaker's action to
 * the viewer's first frame is read on one clock (`performance.now()`).
 *
 * Two client stacks:
 * - the thin client (`joinMeeting` from client/index.ts): the product;
 * - `RawPeer`: mediasoup-client + socket.io-client driving the same request names directly, which
 *   works against both Stagegate (`stagegate: true`: joinRoom with a token, `stage.join` before
 *   producing) and the baseline server (`auth.userId`, produce directly).
 *
 * Every received track is watched: `requestVideoFrameCallback` on a <video> element (first frame,
 * and every frame's receiveTime for the kick benchmark) and `getStats()` polled every 5 ms
 * (first framesDecoded > 0, first audio bytesReceived > 0).
 */
import { Device, type types } from 'mediasoup-client';
import { io, type Socket } from 'socket.io-client';
import { joinMeeting, type Meeting } from '../../../client/index.js';

const now = () => performance.now();

// ------------------------------------------------------------------ peer connection events
interface PcEvent {
  t: number;
  pc: number;
  what: string;
}
const pcEvents: PcEvent[] = [];
let pcCount = 0;
/**
 * The last few peer connections with their number: only a few (a reference keeps a closed one
 * from being collected, and Chromium refuses new ones past 500 uncollected).
 */
const recentPcs: { n: number; pc: RTCPeerConnection }[] = [];
{
  const numbers = new WeakMap<RTCPeerConnection, number>();
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config?: RTCConfiguration) {
      super(config);
      const pc = ++pcCount;
      numbers.set(this, pc);
      recentPcs.push({ n: pc, pc: this });
      if (recentPcs.length > 8) recentPcs.shift();
      pcEvents.push({ t: now(), pc, what: 'created' });
      this.addEventListener('iceconnectionstatechange', () =>
        pcEvents.push({ t: now(), pc, what: `ice:${this.iceConnectionState}` }),
      );
      this.addEventListener('connectionstatechange', () =>
        pcEvents.push({ t: now(), pc, what: `pc:${this.connectionState}` }),
      );
    }
  } as typeof RTCPeerConnection;
  // When each SDP step starts and how long it takes, per peer connection (the join sample's
  // `events`: the speaker's send pc makes offers, a viewer's recv pc answers).
  for (const method of ['createOffer', 'createAnswer', 'setLocalDescription', 'setRemoteDescription'] as const) {
    const original = Native.prototype[method] as (...args: unknown[]) => Promise<unknown>;
    (Native.prototype as unknown as Record<string, unknown>)[method] = async function (
      this: RTCPeerConnection,
      ...args: unknown[]
    ) {
      const pc = numbers.get(this) ?? 0;
      const t = now();
      try {
        return await original.apply(this, args);
      } finally {
        pcEvents.push({ t, pc, what: `${method}:${Math.round((now() - t) * 10) / 10}ms` });
      }
    };
  }
}

// ------------------------------------------------------------------ received tracks
interface FrameMark {
  /** rVFC callback time. */
  now: number;
  /** Time the last packet of the frame was received (rVFC metadata), if Chromium gives it. */
  receiveTime: number | undefined;
}

export interface RecvRecord {
  producerId: string;
  kind: 'audio' | 'video';
  tAdded: number;
  /** First rVFC callback (video). */
  tFirstFrame?: number;
  tFirstFrameReceived?: number;
  /** First getStats() with framesDecoded > 0 (video) or bytesReceived > 0 (audio). */
  tFirstStats?: number;
  tRemoved?: number;
  frames: number;
  lastFrames: FrameMark[];
}

const records = new Map<string, RecvRecord>();
/** How far each consume got, and why it stopped: named in a bench failure. */
const consumeSteps = new Map<string, string>();
const watchers = new Map<string, () => void>();

function receiverOf(track: MediaStreamTrack): RTCRtpReceiver | undefined {
  const pcs = (window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? [];
  for (const pc of pcs) {
    if (pc.connectionState === 'closed') continue;
    const r = pc.getReceivers().find((x) => x.track === track);
    if (r) return r;
  }
  return undefined;
}

function watchTrack(
  producerId: string,
  kind: 'audio' | 'video',
  track: MediaStreamTrack,
  receiver?: RTCRtpReceiver,
): void {
  const rec: RecvRecord = { producerId, kind, tAdded: now(), frames: 0, lastFrames: [] };
  records.set(producerId, rec);
  let stopped = false;
  let video: HTMLVideoElement | undefined;
  if (kind === 'video') {
    video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.width = 160;
    video.height = 120;
    video.srcObject = new MediaStream([track]);
    document.body.appendChild(video);
    void video.play().catch(() => undefined);
    const v = video;
    const onFrame = (t: number, meta: VideoFrameCallbackMetadata) => {
      if (stopped) return;
      const mark = { now: t, receiveTime: meta.receiveTime };
      rec.frames++;
      rec.tFirstFrame ??= t;
      if (rec.tFirstFrameReceived === undefined && meta.receiveTime !== undefined)
        rec.tFirstFrameReceived = meta.receiveTime;
      rec.lastFrames.push(mark);
      if (rec.lastFrames.length > 8) rec.lastFrames.shift();
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }
  const started = now();
  const poll = async () => {
    if (stopped || rec.tFirstStats !== undefined || now() - started > 15_000) return;
    const r = receiver ?? receiverOf(track);
    if (r) {
      const report = await r.getStats();
      report.forEach((s: Record<string, unknown>) => {
        if (s.type !== 'inbound-rtp' || rec.tFirstStats !== undefined) return;
        const got = kind === 'video' ? Number(s.framesDecoded ?? 0) > 0 : Number(s.bytesReceived ?? 0) > 0;
        if (got) rec.tFirstStats = now();
      });
    }
    if (rec.tFirstStats === undefined) setTimeout(() => void poll(), 5);
  };
  void poll();
  watchers.set(producerId, () => {
    stopped = true;
    video?.remove();
  });
}

function trackRemoved(producerId: string): void {
  const rec = records.get(producerId);
  if (rec && rec.tRemoved === undefined) rec.tRemoved = now();
}

// ------------------------------------------------------------------ thin client
let localTracks: { audio: MediaStreamTrack; video: MediaStreamTrack } | undefined;
/** 1280x720: the thin client publishes it as three simulcast layers (640x480: two). */
let hdTracks: { audio: MediaStreamTrack; video: MediaStreamTrack } | undefined;
const meetings = new Map<string, Meeting>();

async function open(width: number, height: number) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width, height, frameRate: 30 } });
  return { audio: stream.getAudioTracks()[0]!, video: stream.getVideoTracks()[0]! };
}

async function tracks(hd = false) {
  if (hd) return (hdTracks ??= await open(1280, 720));
  localTracks ??= await open(640, 480);
  return localTracks;
}

/**
 * Drops closed peer connections from the test helper's `window.__pcs` record and collects them
 * (the bench browser exposes gc()): Chromium refuses new ones past 500 uncollected, and a
 * 5-variant join run makes ~600.
 */
function prunePcs(): void {
  const pcs = (window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs;
  if (pcs) pcs.splice(0, pcs.length, ...pcs.filter((pc) => pc.connectionState !== 'closed'));
  (window as unknown as { gc?: () => void }).gc?.();
}

const bench = {
  now,
  clock: () => performance.timeOrigin + performance.now(),
  timeOrigin: () => performance.timeOrigin,
  pcCount: () => pcCount,
  pcEvents: (since: number) => pcEvents.filter((e) => e.t >= since),

  /** Opens the fake camera and microphone once (640x480). Returns the time it took. */
  async openDevices(): Promise<number> {
    const t = now();
    await tracks();
    const ms = now() - t;
    await tracks(true);
    return ms;
  },

  /** A thin-client meeting that watches every track it receives. */
  async tcJoin(
    name: string,
    url: string,
    token: string,
    publish: boolean,
    hd = false,
    prepare = true,
  ): Promise<{ ms: number; status: string }> {
    prunePcs();
    const t = now();
    const pcsBefore = pcCount;
    const meeting = await joinMeeting({
      url,
      token,
      ...(publish ? { tracks: await tracks(hd) } : {}),
      // unprepared: no track open ahead, so the camera's sender is negotiated at join()
      ...(prepare ? {} : { previewTracks: () => undefined }),
    });
    meetings.set(name, meeting);
    meeting.on('trackAdded', (e) => watchTrack(e.producerId, e.kind, e.track));
    meeting.on('trackRemoved', (e) => trackRemoved(e.producerId));
    if (publish && meeting.stage.status === 'ACCEPTED_TO_JOIN_STAGE') {
      // The client prepares the send transport (and the camera's sender) at ACCEPTED: wait for them.
      const end = now() + 5000;
      while (pcCount < pcsBefore + 2 && now() < end) await new Promise((r) => setTimeout(r, 2));
      if (prepare) {
        const prepared = () =>
          recentPcs.some(
            ({ n, pc }) =>
              n > pcsBefore &&
              /a=sendonly/.test(pc.currentLocalDescription?.sdp ?? '') &&
              !!pc.currentRemoteDescription,
          );
        while (!prepared() && now() < end) await new Promise((r) => setTimeout(r, 2));
      }
    }
    return { ms: now() - t, status: meeting.stage.status };
  },

  /** meeting.stage.join(): t0 before the call, tResolved when the client says it is published. */
  async tcStageJoin(name: string): Promise<{ t0: number; tResolved: number; producerIds: string[] }> {
    const meeting = meetings.get(name)!;
    const t0 = now();
    await meeting.stage.join();
    return { t0, tResolved: now(), producerIds: [...meeting.producers.keys()] };
  },

  async tcStageLeave(name: string): Promise<void> {
    await meetings.get(name)!.stage.leave();
  },

  async tcRequestAccess(name: string): Promise<string> {
    return meetings.get(name)!.stage.requestAccess();
  },

  tcStatus: (name: string) => meetings.get(name)?.stage.status,
  tcProducerIds: (name: string) => [...(meetings.get(name)?.producers.keys() ?? [])],

  async tcLeave(name: string): Promise<void> {
    await meetings.get(name)?.leave();
    meetings.delete(name);
  },

  // ---------------------------------------------------------------- raw driver
  async rawConnect(
    name: string,
    url: string,
    auth: Record<string, string>,
    opts: { stagegate: boolean; recv: boolean; send: boolean },
  ) {
    prunePcs();
    const t = now();
    const peer = await RawPeer.connect(url, auth, opts.stagegate);
    raws.set(name, peer);
    if (opts.recv) await peer.prepareRecv();
    if (opts.send) await peer.prepareSend();
    return { ms: now() - t };
  },

  /** Stagegate: `stage.join` then produce audio and video (the thin client's order); baseline: produce. */
  async rawStageJoin(name: string): Promise<{ t0: number; tResolved: number; producerIds: string[] }> {
    const peer = raws.get(name)!;
    const t0 = now();
    const producerIds = await peer.join();
    return { t0, tResolved: now(), producerIds };
  },

  async rawStageLeave(name: string): Promise<void> {
    await raws.get(name)!.leaveStage();
  },

  rawClose(name: string): void {
    raws.get(name)?.close();
    raws.delete(name);
  },

  // ---------------------------------------------------------------- records
  record: (producerId: string) => {
    const r = records.get(producerId);
    return r ? { ...r, lastFrames: [...r.lastFrames] } : undefined;
  },
  records: () => [...records.values()].map((r) => ({ ...r, lastFrames: [...r.lastFrames] })),
  consumeStep: (producerId: string) => consumeSteps.get(producerId) ?? 'never announced',
  /** Forget finished records and remove their video elements. */
  forget(producerIds: string[]): void {
    for (const id of producerIds) {
      watchers.get(id)?.();
      watchers.delete(id);
      records.delete(id);
    }
  },
};

// ------------------------------------------------------------------ raw driver
interface AckShape {
  ok: boolean;
  data?: unknown;
  error?: { code: string; message: string };
}

const raws = new Map<string, RawPeer>();

class RawPeer {
  send: types.Transport | undefined;
  recv: types.Transport | undefined;
  readonly producers = new Map<string, types.Producer>();
  readonly consumers = new Map<string, types.Consumer>();

  private constructor(
    readonly socket: Socket,
    readonly device: Device,
    readonly stagegate: boolean,
    readonly snapshotProducers: { id: string; kind: 'audio' | 'video' }[],
  ) {}

  static async connect(url: string, auth: Record<string, string>, stagegate: boolean): Promise<RawPeer> {
    const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (e) => reject(e));
    });
    const request = (m: string, d: unknown = {}) => rawRequest(socket, m, d);
    const { rtpCapabilities } = (await request('getRouterRtpCapabilities')) as {
      rtpCapabilities: types.RtpCapabilities;
    };
    const device = new Device();
    await device.load({ routerRtpCapabilities: rtpCapabilities });
    const snapshot = (await request('joinRoom', { rtpCapabilities: device.recvRtpCapabilities })) as {
      participants: { producers: { id: string; kind: 'audio' | 'video' }[] }[];
    };
    const producers = snapshot.participants.flatMap((p) => p.producers ?? []);
    return new RawPeer(socket, device, stagegate, producers);
  }

  request(method: string, data: unknown = {}): Promise<unknown> {
    return rawRequest(this.socket, method, data);
  }

  async prepareSend(): Promise<void> {
    const o = (await this.request('createTransport', { direction: 'send' })) as types.TransportOptions;
    const t = this.device.createSendTransport(o);
    t.on('connect', ({ dtlsParameters }, cb, eb) =>
      this.request('connectTransport', { transportId: t.id, dtlsParameters }).then(() => cb(), eb),
    );
    t.on('produce', ({ kind, rtpParameters, appData }, cb, eb) =>
      this.request('produce', { transportId: t.id, kind, rtpParameters, source: appData.source }).then(
        (d) => cb({ id: (d as { id: string }).id }),
        eb,
      ),
    );
    this.send = t;
  }

  async prepareRecv(): Promise<void> {
    const o = (await this.request('createTransport', { direction: 'recv' })) as types.TransportOptions;
    const t = this.device.createRecvTransport(o);
    t.on('connect', ({ dtlsParameters }, cb, eb) =>
      this.request('connectTransport', { transportId: t.id, dtlsParameters }).then(() => cb(), eb),
    );
    this.recv = t;
    const closed = (data: unknown) => {
      const { producerId } = data as { producerId: string };
      const c = this.consumers.get(producerId);
      this.consumers.delete(producerId);
      c?.close();
      trackRemoved(producerId);
    };
    const handlers: Record<string, (data: unknown) => void> = {
      newProducer: (data) => void this.consume((data as { producer: { id: string } }).producer.id),
      producerClosed: closed,
      consumerClosed: closed,
    };
    for (const [name, fn] of Object.entries(handlers)) this.socket.on(name, fn);
    // Stagegate coalesces a turn's room notifications into one 'batch' frame (the audio and video
    // newProducer of one join often leave together); the items excluded for us are our own.
    this.socket.on('batch', ({ items }: { items: [string, unknown, string?][] }) => {
      for (const [name, data] of items) handlers[name]?.(data);
    });
    for (const p of this.snapshotProducers) void this.consume(p.id);
  }

  async consume(producerId: string): Promise<void> {
    const step = (what: string) => consumeSteps.set(producerId, what);
    step('consume requested');
    try {
      await this.#consume(producerId, step);
    } catch (err) {
      step(`${consumeSteps.get(producerId)}: failed: ${err instanceof Error ? err.message : JSON.stringify(err)}`);
    }
  }

  async #consume(producerId: string, step: (what: string) => void): Promise<void> {
    const o = (await this.request('consume', { producerId })) as {
      id: string;
      producerId: string;
      kind: 'audio' | 'video';
      rtpParameters: types.RtpParameters;
    };
    const consumer = await this.recv!.consume({
      id: o.id,
      producerId: o.producerId,
      kind: o.kind,
      rtpParameters: o.rtpParameters,
    });
    step(`${o.kind} consumer created`);
    this.consumers.set(producerId, consumer);
    await this.request('resumeConsumer', { consumerId: consumer.id });
    step(`${o.kind} consumer resumed`);
    watchTrack(producerId, o.kind, consumer.track, consumer.rtpReceiver);
  }

  async join(): Promise<string[]> {
    // Producers the server closed meanwhile (a kick): drop the local halves.
    for (const p of this.producers.values()) p.close();
    this.producers.clear();
    if (this.stagegate) await this.request('stage.join');
    const { audio, video } = await tracks();
    const ids: string[] = [];
    for (const [track, source] of [
      [audio, 'audio'],
      [video, 'video'],
    ] as const) {
      const p = await this.send!.produce({ track, stopTracks: false, appData: { source } });
      this.producers.set(p.id, p);
      ids.push(p.id);
    }
    return ids;
  }

  async leaveStage(): Promise<void> {
    if (this.stagegate) await this.request('stage.leave');
    else for (const id of this.producers.keys()) await this.request('closeProducer', { producerId: id });
    for (const p of this.producers.values()) p.close();
    this.producers.clear();
  }

  close(): void {
    this.send?.close();
    this.recv?.close();
    this.socket.disconnect();
  }
}

function rawRequest(socket: Socket, method: string, data: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    socket.timeout(10_000).emit(method, data, (err: Error | null, ack: AckShape) => {
      if (err) reject(err);
      else if (!ack.ok) reject(new Error(`${method}: ${ack.error?.code} ${ack.error?.message}`));
      else resolve(ack.data);
    });
  });
}

(window as unknown as { bench: typeof bench }).bench = bench;
export type Bench = typeof bench;
