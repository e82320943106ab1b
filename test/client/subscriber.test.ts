/**
 * Subscriber races, made deterministic with a stub MediaSession whose requests resolve when the
 * test says so: a close that arrives during a consume must not leak a consumer, and a
 * `trackAdded` must never follow the `trackRemoved` of the same producer.
 */
import { describe, expect, test, vi } from 'vitest';
import type { ProducerInfo } from '../../shared/protocol.js';
import type { MediaSession } from '../../client/MediaSession.js';
import { Subscriber } from '../../client/Subscriber.js';
import { fakeTrack } from './helpers.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup() {
  const consumes: Deferred<void>[] = [];
  const resumes: Deferred<void>[] = [];
  const consumers: { id: string; track: MediaStreamTrack; close: ReturnType<typeof vi.fn>; on: () => void }[] = [];
  const media = {
    consume: vi.fn(async (producerId: string) => {
      const d = deferred<void>();
      consumes.push(d);
      await d.promise;
      const consumer = { id: `c-${producerId}`, track: fakeTrack('audio'), close: vi.fn(), on: () => undefined };
      consumers.push(consumer);
      return { consumer, options: {} };
    }),
    resumeConsumer: vi.fn(async () => {
      const d = deferred<void>();
      resumes.push(d);
      await d.promise;
    }),
  } as unknown as MediaSession;
  const added: string[] = [];
  const removed: string[] = [];
  const errors: string[] = [];
  const sub = new Subscriber({
    media,
    ready: () => Promise.resolve(),
    onAdded: (e) => added.push(e.producerId),
    onRemoved: (e) => removed.push(e.producerId),
    onError: (err) => errors.push(err.code),
  });
  const flush = () => new Promise<void>((r) => setImmediate(r));
  return { sub, media, consumes, resumes, consumers, added, removed, errors, flush };
}

const info = (id: string): ProducerInfo => ({ id, userId: 'u', kind: 'audio', source: 'audio', paused: false });

describe('Subscriber', () => {
  test('consume → resume → trackAdded; close → trackRemoved once', async () => {
    const t = setup();
    t.sub.add(info('p1'));
    await t.flush();
    t.consumes[0]!.resolve();
    await t.flush();
    t.resumes[0]!.resolve();
    await t.sub.whenIdle();
    expect(t.added).toEqual(['p1']);

    t.sub.remove('p1');
    t.sub.remove('p1');
    await t.flush();
    expect(t.consumers[0]!.close).toHaveBeenCalled();
    expect(t.removed).toEqual(['p1']);
  });

  test('a close during the consume request: the consumer is closed, no events', async () => {
    const t = setup();
    t.sub.add(info('p1'));
    await t.flush();
    t.sub.remove('p1');
    t.consumes[0]!.resolve();
    await t.flush();
    expect(t.consumers[0]!.close).toHaveBeenCalled();
    expect(t.media.resumeConsumer).not.toHaveBeenCalled();
    expect(t.added).toEqual([]);
    expect(t.removed).toEqual([]);
  });

  test('a close during resumeConsumer: no trackAdded, consumer closed', async () => {
    const t = setup();
    t.sub.add(info('p1'));
    await t.flush();
    t.consumes[0]!.resolve();
    await t.flush();
    t.sub.remove('p1');
    t.resumes[0]!.reject(new Error('gone'));
    await t.flush();
    expect(t.consumers[0]!.close).toHaveBeenCalled();
    expect(t.added).toEqual([]);
    expect(t.removed).toEqual([]);
    expect(t.errors).toEqual([]); // a failure the close explains is not reported
  });

  test('a producer closed before it was announced (replayed notifications) is not consumed', async () => {
    const t = setup();
    t.sub.remove('p1');
    t.sub.add(info('p1'));
    await t.flush();
    expect(t.media.consume).not.toHaveBeenCalled();
  });

  test('a consume failure without a close is reported', async () => {
    const t = setup();
    t.sub.add(info('p1'));
    await t.flush();
    t.consumes[0]!.reject(new Error('boom'));
    await t.sub.whenIdle();
    expect(t.errors).toEqual(['INTERNAL']);
  });

  test('close(): every consumer closed, no events afterwards', async () => {
    const t = setup();
    t.sub.add(info('p1'));
    await t.flush();
    t.consumes[0]!.resolve();
    await t.flush();
    t.resumes[0]!.resolve();
    await t.sub.whenIdle();
    t.sub.close();
    expect(t.consumers[0]!.close).toHaveBeenCalled();
    t.sub.remove('p1');
    await t.flush();
    expect(t.removed).toEqual([]);
  });
});
