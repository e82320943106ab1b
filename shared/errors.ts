/** Every error code the server can answer with. The client surfaces them as `StagegateError`. */
export const ERROR_CODES = [
  /** The payload failed validation (wrong shape, extra fields, out of range). */
  'INVALID_REQUEST',
  /** No valid token: missing, unsigned, tampered, expired, or for another room. */
  'UNAUTHORIZED',
  /** The caller's preset does not permit this action or media. */
  'FORBIDDEN',
  /** Unknown participant, room, transport, producer or consumer. */
  'NOT_FOUND',
  /** The action does not fit the target's current stage status. */
  'INVALID_STATE',
  /** Stage requests are not accepted in the room's current mode (INVITE). */
  'STAGE_DISABLED',
  /** The stage has no free seat (`stageCap` participants on stage, hosts not counted). */
  'STAGE_FULL',
  /** A request too soon after a deny, kick or slot end; `details.retryAfterMs` says how long to wait. */
  'COOLING_DOWN',
  /** The user id is banned from this room (removed with `ban`) until the backend unbans it. */
  'BANNED',
  /** Too many actions in a short time. */
  'RATE_LIMITED',
  /** Media the router cannot handle (codec, RTP capabilities). */
  'UNSUPPORTED',
  /** A bug or a failed worker: the server logged it. */
  'INTERNAL',
  /** Client side: the server did not answer in time. */
  'TIMEOUT',
  /** Client side: not connected (never, or any more). */
  'DISCONNECTED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Machine-readable extras of an error, for the codes that carry any. */
export interface StagegateErrorDetails {
  /** COOLING_DOWN: milliseconds until the request may be made again. */
  retryAfterMs?: number;
}

/** The one error type of Stagegate: a code from the contract, a human message, optional details. */
export class StagegateError extends Error {
  override readonly name = 'StagegateError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: StagegateErrorDetails,
  ) {
    super(message);
  }

  /** COOLING_DOWN: milliseconds until the request may be made again. */
  get retryAfterMs(): number | undefined {
    return this.details?.retryAfterMs;
  }

  toJSON(): { code: ErrorCode; message: string; details?: StagegateErrorDetails } {
    return this.details
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
