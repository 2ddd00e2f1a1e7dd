/**
 * Crashes mid-copy: the worker process SIGKILLed and restarted, and Qdrant
 * answering 503 and dropping connections. Either way the workflow ends with
 * exactly the source's memories — no duplicates, no gaps — and a restarted
 * copy redoes only what came after its last heartbeat.
 */
import type { Client } from '@temporalio/client';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { QdrantCollection } from '../activities/stores/qdrant';
import { openTarget } from '../activities/targets';
import { liveStatus } from '../client/status-view';
import { openReadOnly, pointIdForContentHash } from '../activities/stores/sqlite';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { approveUpdate, pauseSignal, rejectSignal, resumeSignal, setCopySettingsSignal } from '../workflows/messages';
import type { TargetSpec } from '../workflows/plan-schemas';
import { sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { connectClient, heldStill, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus, spawnWorkerProcess } from './support/harness';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 30_000;
let client: Client;
let postgres: TestPostgres;
let qdrant: TestQdrant;
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 384 });
  [client, postgres, qdrant] = await Promise.all([connectClient(), startTestPostgres(), startTestQdrant()]);
});

afterAll(async () => {
  await postgres?.stop();
  await qdrant?.stop();
});

function sourceIds(): Set<string> {
  const db = openReadOnly(sourcePath);
  try {
    return new Set((db.prepare('SELECT content_hash FROM memories').all() as { content_hash: string }[]).map((r) => pointIdForContentHash(r.content_hash)));
  } finally {
    db.close();
  }
}

const planFor = (target: TargetSpec, batchSize: number, concurrency = 2): SqliteVecPlanInput & { target: TargetSpec } => ({
  source: { path: sourcePath },
  target,
  copy: { batchSize, concurrency },
  cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
});

it('worker SIGKILLed mid-copy and restarted: exact result, only batches since the last heartbeat redone', async () => {
  const taskQueue = uniqueQueue('crash');
  const table = uniqueName('memories');
  // Small pages, one at a time: native PostgreSQL copies 30k memories in about 2 s at the default
  // sizes, faster than the status poll can catch the copy in flight before the kill lands.
  const plan = planFor({ kind: 'pgvector', url: postgres.url, schema: 'public', table }, 50, 1);
  let worker = spawnWorkerProcess(taskQueue);
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('crash'), args: [plan] });
  const atKill = await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= MEMORIES * 0.2, 180_000);
  worker.kill('SIGKILL');
  await new Promise((resolve) => worker.once('exit', resolve));
  expect(atKill.copy.copied).toBeLessThan(MEMORIES);

  worker = spawnWorkerProcess(taskQueue);
  try {
    const waiting = await waitForPhase(handle, 'await-approval', 180_000);
    expect(waiting.report?.ok).toBe(true);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');

    const resumed = result.notes.join('\n').match(/Copy resumed at (\d+) memories \(attempt (\d+)\) and wrote the remaining (\d+)/);
    expect(resumed, result.notes.join('\n')).not.toBeNull();
    const [resumedAt, attempt, rewritten] = resumed!.slice(1).map(Number);
    expect(resumedAt).toBeGreaterThan(0);
    expect(attempt).toBeGreaterThan(1);
    expect(rewritten).toBe(MEMORIES - resumedAt);

    const db = new pg.Client({ connectionString: postgres.url });
    await db.connect();
    try {
      const { rows } = await db.query(`SELECT id FROM ${table}`);
      const copied = rows.map((r) => r.id as string);
      expect(copied.length).toBe(MEMORIES);
      expect(new Set(copied)).toEqual(sourceIds()); // no duplicates, no gaps
    } finally {
      await db.end();
    }
  } finally {
    worker.kill('SIGTERM');
  }
});

it('Qdrant answering 503 and dropping connections mid-copy: retried, exact result', async (ctx) => {
  if (!qdrant.double) ctx.skip(); // faults are injected into the double only
  const taskQueue = uniqueQueue('faults');
  const worker = await startWorker(taskQueue);
  try {
    const plan = planFor({ kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') }, 500);
    const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('faults'), args: [plan] });
    await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied > 0);
    qdrant.double!.faults.set({ failEvery: 4, onlyPaths: /\/points/ });
    await waitForStatus(handle, (s) => s.copy.copied >= MEMORIES / 2);
    // Lost acknowledgements: the upsert lands but the worker never hears so, and writes it again.
    qdrant.double!.faults.set({ dropConnections: 6, dropAfterApplying: true, onlyPaths: /\/points/ });
    await waitForPhase(handle, 'await-approval', 180_000);
    qdrant.double!.faults.clear();
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result.report?.targetCount).toBe(MEMORIES);

    const target = openTarget(plan.target);
    try {
      const ids = new Set<string>();
      let cursor: string | null = null;
      do {
        const page = await target.readPage(cursor, 1000);
        page.points.forEach((p) => ids.add(p.id));
        cursor = page.next;
      } while (cursor !== null);
      expect(ids).toEqual(sourceIds());
    } finally {
      await target.close();
    }
    const fired = Object.values(qdrant.double!.stats.all());
    expect(fired.reduce((n, c) => n + c.injected503, 0)).toBeGreaterThan(0);
    expect(fired.reduce((n, c) => n + c.dropped, 0)).toBe(6);
  } finally {
    await worker.stop();
  }
});

it('pause holds the copy still; batch size changes live; resume finishes it exactly', async () => {
  const taskQueue = uniqueQueue('pause');
  const worker = await startWorker(taskQueue);
  try {
    const plan = planFor({ kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') }, 200);
    const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('pause'), args: [plan] });
    await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied > 0);
    await handle.signal(pauseSignal);
    const paused = await waitForStatus(handle, (s) => s.paused);
    const collection = new QdrantCollection(qdrant.url, (plan.target as { collection: string }).collection);
    const held = await heldStill(handle, () => collection.count()); // in-flight batches land, then nothing moves
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await collection.count()).toBe(held); // the store itself holds still
    expect((await liveStatus(handle)).copy.copied).toBe(held); // and the live progress says so
    expect(held).toBeLessThan(MEMORIES);
    expect(paused.paused).toBe(true);

    await handle.signal(setCopySettingsSignal, { batchSize: 1000, concurrency: 4 });
    await handle.signal(resumeSignal);
    const waiting = await waitForPhase(handle, 'await-approval', 180_000);
    expect(waiting.copy).toMatchObject({ batchSize: 1000, concurrency: 4, copied: MEMORIES });
    expect(waiting.notes).toContain('Copy settings now batchSize=1000, concurrency=4.');
    expect(waiting.report?.ok).toBe(true);
    await handle.signal(rejectSignal, { by: 'ops', reason: 'only testing pause' });
    expect((await handle.result()).outcome).toBe('rejected');
  } finally {
    await worker.stop();
  }
});
