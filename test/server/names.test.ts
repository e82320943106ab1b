/** Display names: the normaliser (unit) and the token minting routes refusing bad names (real server). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { displayNameSchema, normalizeDisplayName } from '../../server/auth/names.js';
import { createStagegate, type Stagegate } from '../../server/index.js';

describe('normalizeDisplayName', () => {
  it('strips bidi controls, zero-width and invisible characters; NFC; collapses whitespace', () => {
    expect(normalizeDisplayName('Eve\u202Egnp.exe')).toBe('Evegnp.exe');
    expect(normalizeDisplayName('\u2066Ada\u2069 \u200EL\u200Fovelace\u200B')).toBe('Ada Lovelace');
    expect(normalizeDisplayName('  Jos\u0065\u0301   Luis\t ')).toBe('Jos\u00E9 Luis');
    expect(normalizeDisplayName('\u200B\u200C\u200D\u2060\uFEFF')).toBe('');
    expect(normalizeDisplayName('a\u0000b\u00ADc')).toBe('abc');
  });

  it('keeps emoji sequences (the zero-width joiner between pictographs) and right-to-left letters', () => {
    expect(normalizeDisplayName('👩‍💻 Dev')).toBe('👩‍💻 Dev');
    expect(normalizeDisplayName('a\u200Db')).toBe('ab');
    expect(normalizeDisplayName('مريم')).toBe('مريم');
  });

  it('the schema requires a visible character and a length limit in characters', () => {
    const s = displayNameSchema(5);
    expect(s.safeParse('\u200B\u200B').success).toBe(false);
    expect(s.safeParse('   ').success).toBe(false);
    expect(s.safeParse('🙂🙂🙂🙂🙂').data).toBe('🙂🙂🙂🙂🙂'); // 5 characters, 10 UTF-16 units
    expect(s.safeParse('abcdef').success).toBe(false);
    expect(s.safeParse(' \u202Eabc ').data).toBe('abc');
  });
});

describe('token minting refuses bad names with INVALID_REQUEST (real server)', () => {
  let sg: Stagegate;
  let url: string;
  beforeAll(async () => {
    sg = await createStagegate({
      config: { port: 0, numWorkers: 1, logLevel: 'silent', demo: true, apiSecret: 'secret-for-names-test-0123' },
      useEnv: false,
    });
    ({ url } = await sg.listen());
  });
  afterAll(() => sg?.close());

  const post = async (path: string, body: unknown, auth = false) => {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(auth ? { authorization: 'Bearer secret-for-names-test-0123' } : {}),
      },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      body: (await res.json()) as { error?: { code: string; message: string } } & Record<string, unknown>,
    };
  };

  it('demo tokens: zero-width only, 200 characters refused; a bidi name is minted cleaned', async () => {
    const room = (await post('/demo/rooms', {})).body as unknown as { roomId: string };
    const blank = await post('/demo/tokens', { roomId: room.roomId, name: '\u200B\u200D\u2060', role: 'viewer' });
    expect(blank.status).toBe(400);
    expect(blank.body.error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(blank.body.error!.message).toContain('visible character');
    const long = await post('/demo/tokens', { roomId: room.roomId, name: 'x'.repeat(200), role: 'viewer' });
    expect(long.status).toBe(400);
    expect(long.body.error!.message).toContain('at most 60 characters');
    const ok = await post('/demo/tokens', { roomId: room.roomId, name: 'Eve\u202Egnp.exe', role: 'viewer' });
    expect(ok.status).toBe(201);
    const verified = await sg.tokens.verify(ok.body.token as string);
    expect(verified.name).toBe('Evegnp.exe');
  });

  it('API tokens: the same rule', async () => {
    const created = await post('/api/rooms', {}, true);
    expect(created.status).toBe(201);
    const id = (created.body as { id?: string; roomId?: string }).id ?? (created.body as { roomId: string }).roomId;
    const bad = await post(`/api/rooms/${id}/tokens`, { name: '\u200B', preset: 'viewer' }, true);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'INVALID_REQUEST' });
  });
});
