/**
 * Room settings of STAGE.md Part 2 ("Seats, time and the queue"): validation only, no state.
 * Stage.ts owns the current settings and applies their effects.
 */
import { AUDIENCES, DEFAULT_STAGE_SETTINGS } from '../../shared/stage.js';
import type { StageSettings } from '../../shared/stage.js';
import { refuse } from './stageRules.js';

/** Every setting name, in the order they are reported. */
export const SETTING_KEYS = Object.keys(DEFAULT_STAGE_SETTINGS) as (keyof StageSettings)[];

/** Inclusive bounds of the numeric settings (whole numbers). Seconds settings are capped at one day. */
export const SETTING_LIMITS = {
  stageCap: { min: 0, max: 10_000 },
  acceptTimeoutSeconds: { min: 1, max: 86_400 },
  slotSeconds: { min: 1, max: 86_400 },
  requestCooldownSeconds: { min: 0, max: 86_400 },
} as const;

/** Bounds of `extendSlot(…, seconds)`. */
export const EXTEND_LIMITS = { min: 1, max: 86_400 } as const;

/**
 * Check a partial settings object from an untrusted caller: an object with only known keys, each of
 * the right type and in range. Returns a clean copy; throws INVALID_REQUEST naming the first bad field.
 */
export function validateSettings(input: unknown): Partial<StageSettings> {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw refuse('INVALID_REQUEST', 'settings must be an object');
  const out: Partial<StageSettings> = {};
  for (const [key, value] of Object.entries(input)) {
    switch (key) {
      case 'stageCap':
      case 'slotSeconds':
        out[key] = value === null ? null : wholeNumber(key, value);
        break;
      case 'acceptTimeoutSeconds':
      case 'requestCooldownSeconds':
        out[key] = wholeNumber(key, value);
        break;
      case 'autoFill':
        if (typeof value !== 'boolean') throw refuse('INVALID_REQUEST', 'autoFill must be true or false');
        out.autoFill = value;
        break;
      case 'audience':
        if (!(AUDIENCES as readonly unknown[]).includes(value))
          throw refuse('INVALID_REQUEST', `audience must be one of ${AUDIENCES.join(', ')}`);
        out.audience = value as StageSettings['audience'];
        break;
      default:
        throw refuse('INVALID_REQUEST', `unknown setting ${key}`);
    }
  }
  return out;
}

/** A whole number within `limits`, or INVALID_REQUEST naming `what`. */
export function wholeNumber(
  what: keyof typeof SETTING_LIMITS | 'seconds',
  value: unknown,
  limits: { min: number; max: number } = what === 'seconds' ? EXTEND_LIMITS : SETTING_LIMITS[what],
): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < limits.min || value > limits.max)
    throw refuse('INVALID_REQUEST', `${what} must be a whole number from ${limits.min} to ${limits.max}`);
  return value;
}
