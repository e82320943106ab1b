/**
 * Display names as the server accepts them (token minting: the API and the demo routes): bidi
 * controls and invisible characters stripped (a name cannot reverse or hide the text shown after
 * it), NFC, whitespace collapsed and trimmed; a visible character required; a length limit in
 * characters (code points). Bad names are the caller's error: INVALID_REQUEST.
 */
import { z } from 'zod';

/**
 * Bidi embeddings, overrides, isolates and marks; zero-width and other invisible format
 * characters (soft hyphen, word joiner, BOM, Hangul fillers, Mongolian selectors, tags), and
 * control characters. The zero-width joiner is handled apart (emoji sequences keep it).
 */
const INVISIBLE =
  // eslint-disable-next-line no-control-regex, no-misleading-character-class -- matching these characters is the point
  /[\u0000-\u001F\u007F-\u009F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B\u200C\u200E\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\u{E0000}-\u{E007F}]/gu;
/** A ZWJ stays only inside an emoji sequence (👩‍💻), between two pictographs. */
const STRAY_ZWJ = /(?<!\p{Extended_Pictographic}\uFE0F?)\u200D|\u200D(?!\p{Extended_Pictographic})/gu;
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u;

/** The name as stored and shown (not yet checked: see displayNameSchema). */
export function normalizeDisplayName(raw: string): string {
  return raw.normalize('NFC').replace(INVISIBLE, '').replace(STRAY_ZWJ, '').replace(/\s+/gu, ' ').trim();
}

/** A display name field: normalised, then a visible character and at most `max` characters required. */
export function displayNameSchema(max: number) {
  return z
    .string()
    .transform(normalizeDisplayName)
    .refine((s) => VISIBLE.test(s), { message: 'the display name needs at least one visible character' })
    .refine((s) => [...s].length <= max, { message: `the display name is too long: at most ${max} characters` });
}
