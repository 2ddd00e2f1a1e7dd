/**
 * The rebuild under crashes: the worker process SIGKILLed mid-copy and
 * restarted, and Qdrant answering 503 and dropping connections. Either way
 * the new collection ends up exactly equal to the source (ids, payloads,
 * vectors, bm25), and a restarted copy redoes only what came after its last
 * heartbeat — measured from the workflow's own result, so these run against
 * a real Qdrant (QDRANT_URL) too. Only fault injection needs the double.
 */
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bm25SparseVector } from '../activities/bm25';
import { sameJson } from '../activities/compare';
import type { MemoryPoint, SparseVector } from '../activities/stores/contract';
import { QdrantCollection } from '../activities/stores/qdrant';
import { generateMem0Collections } from '../scripts/generate-mem0-collection';
import { approveUpdate, pauseSignal, resumeSignal } from '../workflows/messages';
import { qdrantCollectionRebuild, type QdrantRebuildPlanInput } from '../workflows/qdrant-collection-rebuild';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus, spawnWorkerProcess } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 8_000;
let client: Client;
let qdrant: TestQdrant;
const workDir = tempDir();

beforeAll(async () => {
  [client, qdrant] = await Promise.all([connectClient(), startTestQdrant()]);
});

afterAll(async () => {
  await qdrant?.stop();
});

async function mem0Dataset(count: number): Promise<string> {
  const base = uniqueName('mem0');
  await generateMem0Collections(qdrant.url, { collection: base, count, dimensions: 128, entitiesPerUser: 0 });
  return base;
}

const planFor = (base: string, batchSize: number): QdrantRebuildPlanInput => ({
  qdrant: { url: qdrant.url },
  collections: [{ source: base, target: `${base}_v2`, alias: `${base}_live` }],
  workDir,
  copy: { batchSize, concurrency: 2 },
  retention: '0s',
});

async function readAll(collection: string): Promise<Map<string, MemoryPoint>> {
  const store = new QdrantCollection(qdrant.url, collection);
  const points = new Map<string, MemoryPoint>();
  let cursor: string | null = null;
  do {
    const page = await store.readPage(cursor, 2000);
    page.points.forEach((p) => points.set(p.id, p));
    cursor = page.next;
  } while (cursor !== null);
  return points;
}

async function waitUntilWritten(collection: string, points: number): Promise<void> {
  const store = new QdrantCollection(qdrant.url, collection);
  while ((await store.count().catch(() => 0)) < points) await new Promise((resolve) => setTimeout(resolve, 50));
}

const sparseEntries = (v: SparseVector | undefined) => new Map(v?.indices.map((index, i) => [index, Math.fround(v.values[i])]));

/** No duplicates, no gaps, nothing altered: every point equal to its source, with its bm25 vector. */
async function expectExactRebuild(base: string): Promise<void> {
  const [source, target] = [await readAll(base), await readAll(`${base}_live`)];
  expect(target.size).toBe(source.size);
  for (const [id, point] of source) {
    const copy = target.get(id);
    expect(sameJson(copy?.payload, point.payload), id).toBe(true); // floats within 1e-15: Qdrant re-serializes them
    expect(copy!.vector.every((x, i) => Math.abs(x - point.vector[i]) < 1e-6)).toBe(true);
    // Qdrant returns sparse indices sorted ascending: compare index → value.
    expect(sparseEntries(copy!.sparse?.bm25)).toEqual(sparseEntries(bm25SparseVector(point.payload.data as string)));
  }
}

it('worker SIGKILLed mid-copy and restarted: exact result, only batches since the last heartbeat redone', async () => {
  const base = await mem0Dataset(MEMORIES);
  const taskQueue = uniqueQueue('rebuild-crash');
  // Small batches (and, on the double, slow writes) keep the copy running while the test pauses it.
  qdrant.double?.faults.set({ latencyMs: 50, onlyPaths: new RegExp(`${base}_v2/points$`) });
  let worker = spawnWorkerProcess(taskQueue);
  const handle = await client.workflow.start(qdrantCollectionRebuild, { taskQueue, workflowId: uniqueName('crash'), args: [planFor(base, 20)] });
  await waitUntilWritten(`${base}_v2`, 100);
  // Paused, the copy keeps heartbeating its cursor, and the worker flushes heartbeats every 2 s,
  // so the kill lands after a heartbeat with progress.
  await handle.signal(pauseSignal);
  const atKill = await waitForStatus(handle, (s) => s.paused);
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  worker.kill('SIGKILL');
  await new Promise((resolve) => worker.once('exit', resolve));
  expect(atKill.copy.copied).toBeLessThan(MEMORIES);

  qdrant.double?.faults.clear();
  worker = spawnWorkerProcess(taskQueue);
  await handle.signal(resumeSignal);
  try {
    const waiting = await waitForPhase(handle, 'await-approval', 120_000);
    expect(waiting.report?.ok, JSON.stringify(waiting.report?.checks)).toBe(true);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');

    const resumed = result.notes.join('\n').match(/resumed at (\d+) points \(attempt (\d+)\) and wrote the remaining (\d+)/);
    expect(resumed, result.notes.join('\n')).not.toBeNull();
    const [resumedAt, attempt, rewritten] = resumed!.slice(1).map(Number);
    expect(resumedAt).toBeGreaterThan(0);
    expect(attempt).toBeGreaterThan(1);
    expect(rewritten).toBe(MEMORIES - resumedAt);
    await expectExactRebuild(base);
  } finally {
    worker.kill('SIGTERM');
  }
});

it('Qdrant answering 503 and dropping connections mid-copy (injected, and counted, on the double only): retried, exact result', async () => {
  const base = await mem0Dataset(4_000);
  const taskQueue = uniqueQueue('rebuild-faults');
  const worker = await startWorker(taskQueue);
  try {
    const handle = await client.workflow.start(qdrantCollectionRebuild, { taskQueue, workflowId: uniqueName('faults'), args: [planFor(base, 250)] });
    // Progress is read from the new collection itself, so a fast copy cannot slip past the waits.
    await waitUntilWritten(`${base}_v2`, 1);
    qdrant.double?.faults.set({ failEvery: 4, latencyMs: 10, onlyPaths: /\/points/ });
    await waitUntilWritten(`${base}_v2`, 2_000);
    // Lost acknowledgements: the upsert lands but the worker never hears so, and writes it again.
    qdrant.double?.faults.set({ dropConnections: 6, dropAfterApplying: true, onlyPaths: /\/points/ });
    await waitForPhase(handle, 'await-approval', 120_000);
    qdrant.double?.faults.clear();
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result.report?.targetCount).toBe(4_000);
    await expectExactRebuild(base);

    if (!qdrant.double) return; // a real Qdrant has no fault counters
    const fired = Object.values(qdrant.double.stats.all());
    expect(fired.reduce((n, c) => n + c.injected503, 0)).toBeGreaterThan(0);
    expect(fired.reduce((n, c) => n + c.dropped, 0)).toBe(6);
  } finally {
    await worker.stop();
  }
});
