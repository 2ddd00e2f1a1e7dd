/**
 * A copy split into key ranges scales out over worker processes: three
 * workers poll one task queue, one is SIGKILLed while it copies a range, and
 * the run still ends with exactly the source's points, redoing at most one
 * batch of the range it lost. Pause and live settings reach every range.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { QdrantCollection } from '../activities/stores/qdrant';
import { openReadOnly, pointIdForContentHash } from '../activities/stores/sqlite';
import { liveStatus } from '../client/status-view';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { pauseUpdate, rejectUpdate, resumeUpdate, setCopySettingsUpdate } from '../workflows/messages';
import { sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { connectClient, heldStill, spawnWorkerProcess, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 30_000;
const RANGES = 3;
const UPSERTS = 'PUT /collections/{name}/points';

let client: Client;
let qdrant: TestQdrant;
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 64, deletedEvery: 0 });
  [client, qdrant] = await Promise.all([connectClient(), startTestQdrant()]);
}, 300_000);

afterAll(async () => {
  await qdrant?.stop();
});

const planFor = (collection: string, batchSize: number, concurrency: number): SqliteVecPlanInput => ({
  source: { path: sourcePath },
  target: { kind: 'qdrant', url: qdrant.url, collection },
  copy: { batchSize, concurrency, partitions: RANGES },
  cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
});

function withSource<T>(read: (db: ReturnType<typeof openReadOnly>) => T): T {
  const db = openReadOnly(sourcePath);
  try {
    return read(db);
  } finally {
    db.close();
  }
}

const sourceIds = () =>
  withSource((db) => new Set((db.prepare('SELECT content_hash FROM memories').pluck().all() as string[]).map(pointIdForContentHash)));

async function targetIds(collection: string): Promise<string[]> {
  const target = new QdrantCollection(qdrant.url, collection);
  const ids: string[] = [];
  for (let cursor: string | null = null; ; ) {
    const page = await target.readPage(cursor, 5_000);
    ids.push(...page.points.map((p) => p.id));
    if ((cursor = page.next) === null) return ids;
  }
}

/** The split the workflow kept in its history: the rows of each range. */
async function rangeSizes(handle: WorkflowHandle): Promise<number[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'splitSqliteVecCopy')!;
  const completed = events.find((e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === String(scheduled.eventId))!;
  const keys = defaultPayloadConverter.fromPayload(completed.activityTaskCompletedEventAttributes!.result!.payloads![0]) as string[];
  const bounds = [-1, ...keys.map(Number), Number.MAX_SAFE_INTEGER];
  return withSource((db) => bounds.slice(1).map((end, i) => db.prepare('SELECT count(*) FROM memories WHERE id > ? AND id <= ?').pluck().get(bounds[i], end) as number));
}

/** Which worker process runs a copy range now: Temporal names each worker `pid@host`. */
async function workerRunningARange(handle: WorkflowHandle, workers: ChildProcess[]): Promise<ChildProcess | undefined> {
  const pending = (await handle.describe()).raw.pendingActivities ?? [];
  const identities = pending.filter((a) => a.activityType?.name === 'copySqliteVecRange' && a.lastWorkerIdentity).map((a) => a.lastWorkerIdentity!);
  return workers.find((w) => identities.some((identity) => identity.startsWith(`${w.pid}@`)));
}

it('three worker processes, one SIGKILLed mid-range: exact id set, no duplicates, at most one batch redone per range', async () => {
  const taskQueue = uniqueQueue('ranges-crash');
  const collection = uniqueName('memories');
  const batchSize = 200;
  const workers = [0, 1, 2].map(() => spawnWorkerProcess(taskQueue));
  qdrant.double?.faults.set({ latencyMs: 15, onlyPaths: /\/points$/ }); // long enough a copy to kill a worker in
  const upsertsBefore = qdrant.double?.stats.route(UPSERTS).requests ?? 0;
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('ranges-crash'), args: [planFor(collection, batchSize, 1)] });
  try {
    let victim: ChildProcess | undefined;
    await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= MEMORIES * 0.2, 180_000);
    for (let tries = 0; !victim && tries < 50; tries++) victim = await workerRunningARange(handle, workers);
    expect(victim, 'a worker process holding a range').toBeDefined();
    victim!.kill('SIGKILL');
    await new Promise((resolve) => victim!.once('exit', resolve));
    workers.splice(workers.indexOf(victim!), 1);

    const waiting = await waitForPhase(handle, 'await-approval', 300_000);
    qdrant.double?.faults.clear();
    expect(waiting.copy.ranges).toMatchObject({ count: RANGES, done: RANGES });
    expect(waiting.copy.copied).toBe(MEMORIES);
    expect(waiting.report?.ok).toBe(true);
    expect(waiting.report?.exhaustive).toMatchObject({ compared: MEMORIES, equal: MEMORIES, missing: 0, extra: 0, different: 0 });
    expect(waiting.notes.join('\n')).toMatch(/Range \d+ resumed at \d+ points \(attempt [2-9]\)/);

    const ids = await targetIds(collection);
    expect(ids.length).toBe(MEMORIES);
    expect(new Set(ids)).toEqual(sourceIds());

    if (qdrant.double) {
      // Every upsert is one page; a clean copy writes ceil(rows / batch) pages per range.
      const sizes = await rangeSizes(handle);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(MEMORIES);
      const pages = sizes.reduce((n, size) => n + Math.ceil(size / batchSize), 0);
      const redone = qdrant.double.stats.route(UPSERTS).requests - upsertsBefore - pages;
      console.log(`ranges ${sizes.join('/')}: ${pages} pages, ${redone} redone after the SIGKILL`);
      expect(redone).toBeGreaterThanOrEqual(0);
      expect(redone).toBeLessThanOrEqual(RANGES);
    }
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'test', reason: 'only testing the crash' }] });
    expect((await handle.result()).outcome).toBe('rejected');
  } finally {
    qdrant.double?.faults.clear();
    workers.forEach((w) => w.kill('SIGTERM'));
  }
}, 600_000);

it('pause holds every range; live settings reach every range; resume finishes exactly', async () => {
  const taskQueue = uniqueQueue('ranges-pause');
  const worker = await startWorker(taskQueue);
  const collection = uniqueName('memories');
  qdrant.double?.faults.set({ latencyMs: 10, onlyPaths: /\/points$/ });
  try {
    const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('ranges-pause'), args: [planFor(collection, 100, 1)] });
    await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= 1_000, 180_000);
    await handle.executeUpdate(pauseUpdate, { args: [{ by: 'ops' }] });
    const target = new QdrantCollection(qdrant.url, collection);
    const held = await heldStill(handle, () => target.count()); // every range commits its pages in flight, then holds
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await target.count()).toBe(held); // no range moves
    const paused = await liveStatus(handle);
    expect(paused.copy.copied).toBe(held); // and the ranges' heartbeats add up to what the store holds
    expect(paused.copy.ranges?.done).toBe(0);
    expect(held).toBeLessThan(MEMORIES);

    const upsertsBefore = qdrant.double?.stats.route(UPSERTS).requests ?? 0;
    await handle.executeUpdate(setCopySettingsUpdate, { args: [{ batchSize: 1_000, concurrency: 2, by: 'ops' }] });
    await handle.executeUpdate(resumeUpdate, { args: [{ by: 'ops' }] });
    const waiting = await waitForPhase(handle, 'await-approval', 300_000);
    expect(waiting.copy).toMatchObject({ batchSize: 1_000, concurrency: 2, copied: MEMORIES, ranges: { count: RANGES, done: RANGES } });
    expect(waiting.report?.ok).toBe(true);
    if (qdrant.double) {
      // Every range took the new batch size: pages of 1,000 (one part-page per range), not of 100.
      const upserts = qdrant.double.stats.route(UPSERTS).requests - upsertsBefore;
      expect(upserts).toBeLessThanOrEqual(Math.ceil((MEMORIES - held) / 1_000) + RANGES);
    }
    expect(new Set(await targetIds(collection))).toEqual(sourceIds());
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'ops' }] });
    expect((await handle.result()).outcome).toBe('rejected');
  } finally {
    qdrant.double?.faults.clear();
    await worker.stop();
  }
}, 600_000);
