/** The router's codecs, RTP helpers, and how worker refusals map to error codes. */
import type { types as ms } from 'mediasoup';
import { StagegateError } from '../../shared/errors.js';
import type { MediaKind } from '../../shared/protocol.js';

export const MEDIA_CODECS: ms.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: { 'x-google-start-bitrate': 1000 } },
  {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
  },
];

/**
 * UDP socket buffers of WebRTC transports: under fan-out load the worker otherwise drops
 * incoming packets in the kernel while it sends a key-frame burst to hundreds of consumers
 * (benchmark 3).
 */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Producer options by kind. Video: `keyFrameRequestDelay`, so that key frame requests reach the
 * sender at most once per 350 ms. Chromium honours one request per 300 ms (WebRTC's
 * EncoderRtcpFeedback) and drops the others, and mediasoup asks again only after 1 s: a viewer
 * whose request came right after another one's key frame (the first viewer on an edge router or
 * another node, after the pipe's own request; a layer switch) waited more than a second for its
 * first frame. Held back instead, the request goes out once the window has passed.
 */
export const KEY_FRAME_REQUEST_DELAY_MS = 350;

export function producerOptions(kind: MediaKind): Pick<ms.ProducerOptions, 'keyFrameRequestDelay'> {
  return kind === 'video' ? { keyFrameRequestDelay: KEY_FRAME_REQUEST_DELAY_MS } : {};
}

/**
 * An error from a worker call that carried client-supplied parameters (DTLS, RTP): mediasoup
 * validates them in the worker and answers a plain Error (duplicate SSRC or MID, bad
 * fingerprint...). That is the client's fault, so INVALID_REQUEST, not INTERNAL.
 */
export function workerRefusal(err: unknown): unknown {
  if (err instanceof StagegateError || !(err instanceof Error)) return err;
  if (err.name === 'InvalidStateError') return err;
  return new StagegateError('INVALID_REQUEST', `the media server refused the parameters: ${err.message}`);
}

/** The media kind of RTP parameters, from their codecs' MIME types; undefined when mixed. */
export function kindOfRtp(rtp: ms.RtpParameters): MediaKind | undefined {
  const kinds = new Set(rtp.codecs.map((c) => c.mimeType.split('/')[0]?.toLowerCase()));
  const [only] = kinds;
  return kinds.size === 1 && (only === 'audio' || only === 'video') ? only : undefined;
}
