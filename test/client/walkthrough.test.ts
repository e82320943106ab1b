/**
 * The README's walkthrough ("Run a local webinar") names the pages' buttons and headings in bold:
 * each must be a label the pages really show (issue 12: the README said "Create webinar" while
 * the button said "Create room"). Labels the pages compose (`Switch and decline ${n}`) match
 * their template, with any text where a placeholder stands.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB = path.join(ROOT, 'client/web');
const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

/** Every string literal and template of the pages' sources, and the HTML text. */
function pageTexts(): string[] {
  const texts: string[] = [];
  for (const file of fs.readdirSync(WEB).filter((f) => /\.(html|ts)$/.test(f))) {
    const source = fs.readFileSync(path.join(WEB, file), 'utf8');
    if (file.endsWith('.html')) texts.push(squash(source.replace(/<[^>]*>/g, '\n')));
    if (file.endsWith('.ts'))
      for (const m of source.matchAll(/'([^'\n]*)'|`([^`]*)`/g)) texts.push(squash(m[1] ?? m[2]!));
  }
  return texts;
}

/** A page text as a pattern: `${…}` placeholders match any text. */
const asPattern = (text: string) =>
  new RegExp(
    `^${text
      .split(/\$\{[^}]*\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.+')}$`,
  );

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const walkthrough = readme.slice(readme.indexOf('## Run a local webinar'), readme.indexOf('## Configuration'));
const labels = [...new Set([...walkthrough.matchAll(/\*\*([^*]+)\*\*/g)].map((m) => squash(m[1]!)))];

it('the walkthrough names labels (bold) that the pages show', () => {
  expect(labels.length).toBeGreaterThan(30);
  const texts = pageTexts();
  // (a template must say something of its own: `${a} ${b}` would match any label)
  const patterns = texts
    .filter((t) => t.includes('${') && t.replace(/\$\{[^}]*\}/g, '').trim().length >= 4)
    .map(asPattern);
  const missing = labels.filter(
    (label) => !texts.some((t) => t.includes(label)) && !patterns.some((p) => p.test(label)),
  );
  expect(missing).toEqual([]);
});

it('a label the pages do not show is caught', () => {
  const texts = pageTexts();
  expect(texts.some((t) => t.includes('Create room'))).toBe(true);
  expect(texts.some((t) => t.includes('Create webinar'))).toBe(false);
});
