/**
 * Participant tokens: JWT HS256 signed by the server's token secret (jose). A token names the
 * user (sub), display name, room and preset; the client never chooses any of them. A token
 * minted for an existing room also names the room instance (`rin`, `Room.instanceId`): a room
 * deleted and created again with the same id refuses it. `refresh()` mints the same claims again
 * with a new expiry, for connected sessions (see signaling).
 */
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { StagegateError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/protocol.js';
import { MEDIA_SOURCES, PRESETS, STAGE_ACCESS, type Preset, type PresetName } from '../../shared/stage.js';

const ISSUER = 'stagegate';
const mediaPermission = z.enum(['ALLOWED', 'NOT_ALLOWED']);

export const presetSchema = z.strictObject({
  name: z.string().min(1).max(64),
  stageAccess: z.enum(STAGE_ACCESS),
  acceptStageRequests: z.boolean(),
  kickParticipant: z.boolean(),
  media: z.strictObject(
    Object.fromEntries(MEDIA_SOURCES.map((s) => [s, mediaPermission])) as Record<
      (typeof MEDIA_SOURCES)[number],
      typeof mediaPermission
    >,
  ),
});

export const presetNameSchema = z.enum(Object.keys(PRESETS) as [PresetName, ...PresetName[]]);
/** A preset as given to the API: a shipped preset's name, or all of its fields. */
export const presetInputSchema = z.union([presetNameSchema, presetSchema]);
export type PresetInput = z.infer<typeof presetInputSchema>;

export function resolvePreset(input: PresetInput): Preset {
  return typeof input === 'string' ? PRESETS[input] : input;
}

/** User and room ids: letters, digits and `_ . : -` (so no id can collide with BACKEND_ACTOR). */
export const idSchema = z
  .string()
  .min(1)
  .max(LIMITS.idLength)
  .regex(/^[\w.:-]+$/, 'letters, digits, _ . : - only');

export const tokenClaimsSchema = z.strictObject({
  userId: idSchema,
  name: z.string().min(1).max(100),
  roomId: idSchema,
  preset: presetInputSchema,
  /**
   * The room instance (`Room.instanceId`) the token is for. The HTTP API and the demo routes
   * always set it; a token without it is accepted by whichever room holds `roomId` (and in demo
   * mode may create it), so pass it when minting yourself for an existing room.
   */
  roomInstance: z.string().min(1).max(64).optional(),
});
export type TokenClaims = z.infer<typeof tokenClaimsSchema>;

export interface VerifiedToken {
  userId: string;
  name: string;
  roomId: string;
  preset: Preset;
  /** The room instance the token is bound to, when it is. */
  roomInstance?: string | undefined;
  /** The preset as the token carries it (a name or the fields), to mint it again. */
  presetClaim: PresetInput;
  /** Epoch seconds. */
  issuedAt: number;
  /** Epoch seconds. */
  expiresAt: number;
}

export class TokenService {
  readonly #key: Uint8Array;

  constructor(secret: string) {
    this.#key = new TextEncoder().encode(secret);
  }

  /** Signs a token valid for `ttlSeconds` (default 6 hours). */
  async mint(claims: TokenClaims, ttlSeconds = 6 * 3600): Promise<string> {
    return this.#sign(claims, Math.floor(Date.now() / 1000) + ttlSeconds);
  }

  /**
   * A fresh token for the same claims as `token` (already verified), valid as long as the
   * original was (at least `minTtlSeconds`), from now.
   */
  async refresh(token: VerifiedToken, minTtlSeconds = 1): Promise<{ token: string; expiresAt: number }> {
    const expiresAt = Math.floor(Date.now() / 1000) + Math.max(minTtlSeconds, token.expiresAt - token.issuedAt);
    const claims: TokenClaims = {
      userId: token.userId,
      name: token.name,
      roomId: token.roomId,
      preset: token.presetClaim,
    };
    if (token.roomInstance) claims.roomInstance = token.roomInstance;
    return { token: await this.#sign(claims, expiresAt), expiresAt };
  }

  async #sign(claims: TokenClaims, expiresAt: number): Promise<string> {
    const c = tokenClaimsSchema.parse(claims);
    const body = { name: c.name, room: c.roomId, preset: c.preset, ...(c.roomInstance ? { rin: c.roomInstance } : {}) };
    return new SignJWT(body)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setSubject(c.userId)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.#key);
  }

  /** Verifies signature, expiry and shape; throws UNAUTHORIZED with the reason. */
  async verify(token: unknown): Promise<VerifiedToken> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 8192) {
      throw new StagegateError('UNAUTHORIZED', 'a participant token is required');
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.#key, { issuer: ISSUER, algorithms: ['HS256'] }));
    } catch (err) {
      const reason =
        err instanceof joseErrors.JWTExpired
          ? 'the token has expired'
          : err instanceof joseErrors.JWSSignatureVerificationFailed
            ? 'the token signature is invalid'
            : 'the token is malformed or unsigned';
      throw new StagegateError('UNAUTHORIZED', reason);
    }
    const parsed = tokenClaimsSchema.safeParse({
      userId: payload.sub,
      name: payload.name,
      roomId: payload.room,
      preset: payload.preset,
      roomInstance: payload.rin,
    });
    if (!parsed.success || typeof payload.exp !== 'number') {
      throw new StagegateError('UNAUTHORIZED', 'the token does not carry valid Stagegate claims');
    }
    const c = parsed.data;
    return {
      userId: c.userId,
      name: c.name,
      roomId: c.roomId,
      preset: resolvePreset(c.preset),
      presetClaim: c.preset,
      roomInstance: c.roomInstance,
      // a token signed elsewhere may lack iat: its refreshes then last as long as it had left
      issuedAt: typeof payload.iat === 'number' ? payload.iat : Math.floor(Date.now() / 1000),
      expiresAt: payload.exp,
    };
  }
}
