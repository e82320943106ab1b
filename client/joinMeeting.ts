/**
 * `joinMeeting(options)`: connect, load the Device, join the room, start receiving.
 *
 * 1. socket.io connection with `auth: { token, roomId }`: a refused connection rejects with the
 *    server's code (UNAUTHORIZED for a missing, tampered or expired token, or a roomId that is
 *    not the token's; NOT_FOUND for an unknown room).
 * 2. `getRouterRtpCapabilities` → `device.load`.
 * 3. `joinRoom { rtpCapabilities }` → the room snapshot (notifications the server sends before
 *    that ack are held and replayed onto the snapshot).
 * 4. recv transport, then every producer of the snapshot is consumed (`trackAdded`).
 * 5. the status is followed from here on (send transport prepared when ACCEPTED_TO_JOIN_STAGE).
 *
 * Resolves once 4 is done; on any failure everything opened so far is closed and the promise
 * rejects with a `StagegateError`. From then on an unexpected drop of the connection is ridden
 * out by the meeting itself (`reconnecting` / `reconnected`; `reconnectTimeoutMs`).
 */
import type { RequestData } from '../shared/protocol.js';
import { toStagegateError } from './errors.js';
import { MediaSession } from './MediaSession.js';
import { Meeting } from './Meeting.js';
import { Signaling } from './Signaling.js';
import type { JoinMeetingOptions } from './types.js';

export async function joinMeeting(options: JoinMeetingOptions): Promise<Meeting> {
  // Before any network: a browser without WebRTC (or Node without a handlerFactory) fails here.
  const device = MediaSession.createDevice(options.handlerFactory);
  const signaling = await Signaling.connect({
    url: options.url,
    token: options.token,
    roomId: options.roomId,
    socketOptions: options.socketOptions,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  let meeting: Meeting | undefined;
  try {
    const media = await MediaSession.load(device, signaling, options.handlerFactory);
    media.simulcast = options.simulcast ?? true;
    signaling.hold();
    const snapshot = await signaling.request('joinRoom', {
      rtpCapabilities: device.recvRtpCapabilities as RequestData<'joinRoom'>['rtpCapabilities'],
    });
    meeting = new Meeting(signaling, media, snapshot, options);
    signaling.release();
    await meeting.ready();
    return meeting;
  } catch (err) {
    if (meeting) await meeting.leave();
    else signaling.close();
    throw toStagegateError(err, 'joinMeeting');
  }
}
