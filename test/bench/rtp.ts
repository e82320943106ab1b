/**
 * A synthetic RTP source for the fan-out benchmark: what a 640x480 VP8 camera plus Opus
 * microphone put on the wire, generated in Node and sent over UDP to a mediasoup PlainTransport.
 *
 * - Video: PT 96, 90 kHz, 30 frames/s; a delta frame is 4 packets of 1,100 payload bytes, a key
 *   frame 20 packets, every 2 s and within ~one frame of a PLI/FIR from the worker. Each packet
 *   carries a real VP8 payload descriptor (RFC 7741: S bit, 15-bit picture id) and the first packet
 *   of a frame the VP8 payload header (key frame bit, and for key frames the start code and
 *   640x480), which is all mediasoup parses. About 128 packets/s, 1.15 Mbit/s.
 * - Audio: PT 111, 48 kHz, one 20 ms Opus packet (90 bytes) every 20 ms: 50 packets/s.
 *
 * The content is not decodable video (no VP8 bitstream), which mediasoup never looks at. Real
 * Chromium media is what the join and kick benchmarks use.
 */
import dgram from 'node:dgram';

export const VIDEO_PT = 96;
export const AUDIO_PT = 111;
const FPS = 30;
const DELTA_PACKETS = 4;
const KEY_PACKETS = 20;
const KEY_INTERVAL_FRAMES = 60;
const PAYLOAD = 1100;
const AUDIO_PAYLOAD = 90;

export interface RtpSourceOptions {
  videoSsrc: number;
  audioSsrc: number;
}

export class RtpSource {
  readonly socket = dgram.createSocket('udp4');
  #target: { port: number; host: string } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #start = 0;
  #videoFrames = 0;
  #audioFrames = 0;
  #videoSeq = 1000;
  #audioSeq = 5000;
  #pictureId = 0;
  #keyRequested = true;
  #lastKey = -Infinity;
  #sent = { video: 0, audio: 0, keyFrames: 0, plis: 0 };
  readonly #videoTs0 = 12345;
  readonly #audioTs0 = 67890;
  readonly #opts: RtpSourceOptions;
  readonly #payload = Buffer.alloc(PAYLOAD, 0x5a);

  constructor(opts: RtpSourceOptions) {
    this.#opts = opts;
    this.socket.on('message', (msg) => this.#rtcp(msg));
  }

  async bind(): Promise<number> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', r));
    return this.socket.address().port;
  }

  get sent() {
    return { ...this.#sent };
  }

  /** Sends to this address from now on (starting with a key frame); undefined pauses. */
  target(port: number | undefined): void {
    this.#target = port === undefined ? undefined : { port, host: '127.0.0.1' };
    this.#keyRequested = true;
  }

  start(): void {
    if (this.#timer) return;
    this.#start = performance.now();
    const tick = () => {
      this.#catchUp();
      this.#timer = setTimeout(tick, 4);
    };
    tick();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.socket.close();
  }

  #catchUp(): void {
    const elapsed = performance.now() - this.#start;
    // Bounded: after a stall, skip ahead instead of bursting more than 200 ms worth.
    const videoDue = Math.floor((elapsed * FPS) / 1000);
    const audioDue = Math.floor(elapsed / 20);
    if (!this.#target) {
      // Paused: nothing generated, so sequence numbers stay contiguous when sending resumes.
      this.#videoFrames = videoDue;
      this.#audioFrames = audioDue;
      return;
    }
    if (videoDue - this.#videoFrames > 6) this.#videoFrames = videoDue - 6;
    while (this.#videoFrames < videoDue) this.#videoFrame(this.#videoFrames++);
    if (audioDue - this.#audioFrames > 10) this.#audioFrames = audioDue - 10;
    while (this.#audioFrames < audioDue) this.#audioFrame(this.#audioFrames++);
  }

  #videoFrame(n: number): void {
    const key = this.#keyRequested || n - this.#lastKey >= KEY_INTERVAL_FRAMES;
    if (key) {
      this.#keyRequested = false;
      this.#lastKey = n;
      this.#sent.keyFrames++;
    }
    const packets = key ? KEY_PACKETS : DELTA_PACKETS;
    const ts = (this.#videoTs0 + n * (90000 / FPS)) >>> 0;
    const pid = this.#pictureId++ & 0x7fff;
    for (let i = 0; i < packets; i++) {
      const first = i === 0;
      const descriptor = [0x80 | (first ? 0x10 : 0), 0x80, 0x80 | (pid >> 8), pid & 0xff];
      let vp8Header: number[] = [];
      if (first) {
        // VP8 payload header: size0/show_frame/version/P (P = 0 on key frames), size1, size2;
        // key frames add the start code and 640x480 (14-bit little-endian sizes).
        vp8Header = key ? [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01] : [0x11, 0x02, 0x00];
      }
      const head = Buffer.from([...descriptor, ...vp8Header]);
      const body = this.#payload.subarray(0, PAYLOAD - head.length);
      this.#send(
        rtpHeader(VIDEO_PT, i === packets - 1, this.#videoSeq++ & 0xffff, ts, this.#opts.videoSsrc),
        head,
        body,
      );
      this.#sent.video++;
    }
  }

  #audioFrame(n: number): void {
    const ts = (this.#audioTs0 + n * 960) >>> 0;
    const body = this.#payload.subarray(0, AUDIO_PAYLOAD);
    this.#send(
      rtpHeader(AUDIO_PT, false, this.#audioSeq++ & 0xffff, ts, this.#opts.audioSsrc),
      Buffer.from([0x78]),
      body,
    );
    this.#sent.audio++;
  }

  #send(...parts: Buffer[]): void {
    const t = this.#target;
    if (!t) return;
    this.socket.send(parts, t.port, t.host);
  }

  /** RTCP from the worker (rtcp-mux): a PLI (PT 206 FMT 1) or FIR (FMT 4) asks for a key frame. */
  #rtcp(msg: Buffer): void {
    let off = 0;
    while (off + 4 <= msg.length) {
      const fmt = msg[off]! & 0x1f;
      const pt = msg[off + 1]!;
      const len = (msg.readUInt16BE(off + 2) + 1) * 4;
      if (pt === 206 && (fmt === 1 || fmt === 4)) {
        this.#sent.plis++;
        this.#keyRequested = true;
      }
      off += len;
    }
  }
}

function rtpHeader(pt: number, marker: boolean, seq: number, ts: number, ssrc: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ts, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}

/** RTP parameters a PlainTransport producer is given for this source. */
export function sourceRtpParameters(kind: 'audio' | 'video', ssrc: number) {
  return kind === 'audio'
    ? {
        codecs: [
          {
            mimeType: 'audio/opus',
            payloadType: AUDIO_PT,
            clockRate: 48000,
            channels: 2,
            parameters: {},
            rtcpFeedback: [],
          },
        ],
        headerExtensions: [],
        encodings: [{ ssrc }],
        rtcp: { cname: 'bench-source', reducedSize: true },
      }
    : {
        codecs: [
          {
            mimeType: 'video/VP8',
            payloadType: VIDEO_PT,
            clockRate: 90000,
            parameters: {},
            rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
          },
        ],
        headerExtensions: [],
        encodings: [{ ssrc }],
        rtcp: { cname: 'bench-source', reducedSize: true },
      };
}
