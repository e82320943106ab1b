/**
 * Participant tokens: JWT HS256 signed by the server's token secret (jose). A token names the
 * user (sub), display name, room and preset; the client never chooses any of them.
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
});
export type TokenClaims = z.infer<typeof tokenClaimsSchema>;

export interface VerifiedToken {
  userId: string;
  name: string;
  roomId: string;
  preset: Preset;
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
    const c = tokenClaimsSchema.parse(claims);
    return new SignJWT({ name: c.name, room: c.roomId, preset: c.preset })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(ISSUER)
      .setSubject(c.userId)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
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
      expiresAt: payload.exp,
    };
  }
}
