/**
 * A worker told to stop (SIGTERM, a deploy) hands a copy over cleanly even
 * when it stops before any page is in flight — as a catch-up at the start of
 * validation can be: the attempt ends as a retryable WorkerShuttingDown with
 * nothing written, never as a TypeError that loses the reason.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, expect, it } from 'vitest';
import { copyPointsResumably } from '../activities/copy-engine';
import type { MemoryPoint, PointSource, PointTarget } from '../activities/stores/contract';
import { setWorkerStoppingCheck } from '../activities/worker-state';

const points: MemoryPoint[] = Array.from({ length: 30 }, (_, i) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, vector: [i, 1], payload: { n: i } }));

const source: PointSource = {
  count: async () => points.length,
  readPage: async (cursor, limit) => {
    const from = cursor === null ? 0 : Number(cursor);
    return { points: points.slice(from, from + limit), next: from + limit >= points.length ? null : String(from + limit) };
  },
  close: async () => {},
};

afterEach(() => setWorkerStoppingCheck(() => false));

it('a worker stopping before the first page is in flight ends the attempt as WorkerShuttingDown, having written nothing', async () => {
  const written: MemoryPoint[] = [];
  const target: PointTarget = {
    upsert: async (batch) => void written.push(...batch),
    count: async () => written.length,
    retrieve: async (ids) => written.filter((p) => ids.includes(p.id)),
    close: async () => {},
  };
  setWorkerStoppingCheck(() => true);
  const copy = new MockActivityEnvironment().run(() =>
    copyPointsResumably({ source, target, channel: { control: async () => ({ paused: false, batchSize: 10, concurrency: 2 }), report: async () => {} } }),
  );
  const err = await copy.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect((err as ApplicationFailure).type).toBe('WorkerShuttingDown');
  expect((err as ApplicationFailure).nonRetryable).toBe(false);
  expect(written).toEqual([]);
});
