/**
 * One handler per request method. The mapped type makes the table exhaustive: a method added to
 * the protocol without a handler here does not compile. Each handler declares once what it
 * needs (`joined`: the caller has called joinRoom); the dispatcher enforces it, validates the
 * payload with the protocol's strict schema, and turns throws into typed error acks.
 * Stage permissions (FORBIDDEN) are decided by the stage state machine itself.
 */
import type { types as ms } from 'mediasoup';
import type { z } from 'zod';
import { StagegateError } from '../../shared/errors.js';
import { requestSchemas, type RequestMethod, type Responses } from '../../shared/protocol.js';
import type { VerifiedToken } from '../auth/tokens.js';
import type { Participant, ParticipantSession } from '../room/Participant.js';
import type { Room } from '../room/Room.js';

export interface ConnectionContext {
  token: VerifiedToken;
  room: Room;
  session: ParticipantSession;
  /** Mints a fresh token for this connection's identity (and reschedules the automatic refresh). */
  refreshToken(): Promise<Responses['refreshToken']>;
  /** Set by joinRoom. */
  participant?: Participant;
}

export interface JoinedContext extends ConnectionContext {
  participant: Participant;
}

type Data<M extends RequestMethod> = z.output<(typeof requestSchemas)[M]>;

type Handler<M extends RequestMethod> =
  | { needs: 'connected'; run(ctx: ConnectionContext, data: Data<M>): Promise<Responses[M]> | Responses[M] }
  | { needs: 'joined'; run(ctx: JoinedContext, data: Data<M>): Promise<Responses[M]> | Responses[M] };

export type HandlerTable = { [M in RequestMethod]: Handler<M> };

const ok = {} as Record<string, never>;

export const handlers: HandlerTable = {
  getRouterRtpCapabilities: {
    needs: 'connected',
    run: ({ room }) => ({ rtpCapabilities: room.router.rtpCapabilities }),
  },
  joinRoom: {
    needs: 'connected',
    run(ctx, { rtpCapabilities }) {
      if (ctx.participant) throw new StagegateError('INVALID_STATE', 'already joined');
      const snapshot = ctx.room.join(ctx.session, ctx.token, rtpCapabilities as unknown as ms.RtpCapabilities);
      ctx.participant = ctx.room.participants.get(ctx.token.userId);
      return snapshot;
    },
  },
  refreshToken: {
    needs: 'connected',
    run: (ctx) => ctx.refreshToken(),
  },
  leaveRoom: {
    needs: 'joined',
    run({ room, participant }) {
      room.leave(participant.id);
      return ok;
    },
  },
  createTransport: {
    needs: 'joined',
    run: ({ room, participant }, { direction }) => room.createTransport(participant, direction),
  },
  connectTransport: {
    needs: 'joined',
    async run({ room, participant }, { transportId, dtlsParameters }) {
      await room.connectTransport(participant, transportId, dtlsParameters as unknown as ms.DtlsParameters);
      return ok;
    },
  },
  produce: {
    needs: 'joined',
    run: ({ room, participant }, { transportId, kind, rtpParameters, source }) =>
      room.produce(participant, {
        transportId,
        kind,
        rtpParameters: rtpParameters as unknown as ms.RtpParameters,
        source,
      }),
  },
  closeProducer: {
    needs: 'joined',
    run({ room, participant }, { producerId }) {
      room.closeProducer(participant, producerId);
      return ok;
    },
  },
  pauseProducer: {
    needs: 'joined',
    async run({ room, participant }, { producerId }) {
      await room.setProducerPaused(participant, producerId, true);
      return ok;
    },
  },
  resumeProducer: {
    needs: 'joined',
    async run({ room, participant }, { producerId }) {
      await room.setProducerPaused(participant, producerId, false);
      return ok;
    },
  },
  consume: {
    needs: 'joined',
    run: ({ room, participant }, { producerId }) => room.consume(participant, producerId),
  },
  resumeConsumer: {
    needs: 'joined',
    async run({ room, participant }, { consumerId }) {
      await room.resumeConsumer(participant, consumerId);
      return ok;
    },
  },
  setConsumerPreferences: {
    needs: 'joined',
    run: ({ room, participant }, req) => room.setConsumerPreferences(participant, req),
  },
  'stage.requestAccess': {
    needs: 'joined',
    run({ room, participant }) {
      const answer = room.stage.requestAccessWithPosition(participant.id);
      room.queue.answered(participant.id, answer);
      return answer;
    },
  },
  'stage.cancelRequestAccess': {
    needs: 'joined',
    run: ({ room, participant }) => ({ status: room.stage.cancelRequestAccess(participant.id) }),
  },
  'stage.getAccessRequests': {
    needs: 'joined',
    run: ({ room, participant }) => ({ requests: room.stage.getAccessRequests(participant.id) }),
  },
  'stage.grantAccess': {
    needs: 'joined',
    run: ({ room, participant }, { userIds }) => ({ results: room.stage.grantAccess(participant.id, userIds) }),
  },
  'stage.denyAccess': {
    needs: 'joined',
    run: ({ room, participant }, { userIds }) => ({ results: room.stage.denyAccess(participant.id, userIds) }),
  },
  'stage.join': {
    needs: 'joined',
    // Synchronous on purpose: decided before the socket's next request runs, since the client
    // sends its prepared camera's `produce` right behind it (test/cluster/media.test.ts).
    run: ({ room, participant }) => ({ status: room.stage.join(participant.id) }),
  },
  'stage.leave': {
    needs: 'joined',
    run: ({ room, participant }) => ({ status: room.stage.leave(participant.id) }),
  },
  'stage.kick': {
    needs: 'joined',
    run: ({ room, participant }, { userIds }) => ({ results: room.stage.kick(participant.id, userIds) }),
  },
  'stage.setMode': {
    needs: 'joined',
    run: ({ room, participant }, { mode }) => ({ mode: room.stage.setMode(participant.id, mode) }),
  },
  'stage.setSettings': {
    needs: 'joined',
    run: ({ room, participant }, change) => ({ settings: room.setSettings(participant.id, change) }),
  },
  'stage.mute': {
    needs: 'joined',
    run: ({ room, participant }, { userIds, sources }) => ({
      results: room.stage.mute(participant.id, userIds, sources),
    }),
  },
  'stage.requestUnmute': {
    needs: 'joined',
    run({ room, participant }, { source }) {
      room.stage.requestUnmute(participant.id, source);
      return ok;
    },
  },
  'stage.allowUnmute': {
    needs: 'joined',
    run: ({ room, participant }, { userIds, sources }) => ({
      results: room.stage.allowUnmute(participant.id, userIds, sources),
    }),
  },
  'stage.removeFromRoom': {
    needs: 'joined',
    run: ({ room, participant }, { userIds, ban }) => ({
      results: room.removeFromRoom(participant.id, userIds, ban === undefined ? {} : { ban }),
    }),
  },
  'stage.extendSlot': {
    needs: 'joined',
    run: ({ room, participant }, { userId, seconds }) => ({
      endsAt: room.stage.extendSlot(participant.id, userId, seconds),
    }),
  },
};
