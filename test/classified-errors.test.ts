/**
 * Failures that cannot heal end the workflow in one attempt with a named type
 * and a message naming ids and fields, never contents; and values a store
 * re-serializes (Qdrant 1.19's float parsing) are not mistaken for failures.
 * Real Temporal, real SQLite, PostgreSQL (native, PGlite or DATABASE_URL), the Qdrant
 * double (or QDRANT_URL).
 */
import type { Client } from '@temporalio/client';
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sameNumber } from '../activities/compare';
import { pointIdForContentHash } from '../activities/stores/sqlite';
import { deleteCollection, QdrantCollection } from '../activities/stores/qdrant';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { pauseSignal, rejectSignal, resumeSignal } from '../workflows/messages';
import type { TargetSpec } from '../workflows/plan-schemas';
import { sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { activityAttempts, connectClient, failureMessage, failureType, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 300;
let client: Client;
let worker: { stop(): Promise<void> };
let postgres: TestPostgres;
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('classified');
const dir = tempDir();

beforeAll(async () => {
  [client, postgres, qdrant] = await Promise.all([connectClient(), startTestPostgres(), startTestQdrant()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await postgres?.stop();
  await qdrant?.stop();
});

function newStore(): string {
  const file = path.join(dir, `${uniqueName('store')}.db`);
  generateMcpStore(file, { count: MEMORIES, dimensions: 32, deletedEvery: 0 });
  return file;
}

type QdrantTarget = Extract<TargetSpec, { kind: 'qdrant' }>;
const qdrantTarget = (): QdrantTarget => ({ kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') });

function start(sourcePath: string, target: TargetSpec, overrides: Partial<SqliteVecPlanInput> = {}) {
  const plan: SqliteVecPlanInput = {
    source: { path: sourcePath },
    target,
    copy: { batchSize: 50, concurrency: 2 },
    cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
    ...overrides,
  };
  return client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('wf'), args: [plan] });
}

it('REAL-seconds timestamps needing 17 significant digits copy to Qdrant and validate, though Qdrant returns some as the neighbouring double', async () => {
  const sourcePath = newStore();
  const target = qdrantTarget();
  const handle = await start(sourcePath, target);
  const waiting = await waitForPhase(handle, 'await-approval');
  expect(waiting.report).toMatchObject({ ok: true, sourceCount: MEMORIES, targetCount: MEMORIES });

  const db = new Database(sourcePath, { readonly: true });
  const rows = db.prepare('SELECT content_hash, created_at FROM memories').all() as { content_hash: string; created_at: number }[];
  db.close();
  const collection = new QdrantCollection(qdrant.url, target.collection);
  const stored = new Map((await collection.retrieve(rows.map((r) => pointIdForContentHash(r.content_hash)))).map((p) => [p.id, p.payload.created_at as number]));
  const moved = rows.filter((r) => stored.get(pointIdForContentHash(r.content_hash)) !== r.created_at);
  expect(moved.length).toBeGreaterThan(0); // the store really re-serialized some of them…
  expect(moved.every((r) => sameNumber(r.created_at, stored.get(pointIdForContentHash(r.content_hash))!))).toBe(true); // …by ulps only
  await handle.signal(rejectSignal, { by: 'test', reason: 'only validating' });
  expect((await handle.result()).outcome).toBe('rejected');
});

it('a batch the target keeps storing differently fails once as BatchCheckMismatch naming point and field (double only: corrupting fault)', async (ctx) => {
  if (!qdrant.double) ctx.skip();
  qdrant.double!.faults.set({ corruptPayloadField: 'memory_type', onlyPaths: /\/points$/ });
  try {
    const handle = await start(newStore(), qdrantTarget());
    expect(await failureType(handle)).toBe('BatchCheckMismatch');
    const message = await failureMessage(handle);
    expect(message).toMatch(/Batch check failed for point [0-9a-f-]{36}: payload field 'memory_type' differs, twice in a row/);
    expect(message).not.toMatch(/Memory \d+ for/); // never the content
    expect(await activityAttempts(handle, 'copySqliteVecPoints')).toBe(1);
  } finally {
    qdrant.double!.faults.clear();
  }
});

it('a Qdrant refusal that cannot heal (collection deleted mid-copy) fails the copy in one attempt as QdrantError', async () => {
  const sourcePath = path.join(dir, `${uniqueName('store')}.db`);
  generateMcpStore(sourcePath, { count: 2_000, dimensions: 8, deletedEvery: 0 });
  const target = qdrantTarget();
  qdrant.double?.faults.set({ latencyMs: 10, onlyPaths: /\/points/ }); // 400 pages: time to pause mid-copy
  try {
    const handle = await start(sourcePath, target, { copy: { batchSize: 5, concurrency: 1 } });
    await waitForPhase(handle, 'copy');
    await handle.signal(pauseSignal);
    await new Promise((r) => setTimeout(r, 2_000)); // the copy sees the pause within a second and holds
    expect((await waitForStatus(handle, (s) => s.paused)).copy.copied).toBeLessThan(2_000);
    await deleteCollection(qdrant.url, target.collection);
    await handle.signal(resumeSignal);
    expect(await failureType(handle)).toBe('QdrantError');
    expect(await failureMessage(handle)).toMatch(/Qdrant collection '.+' does not exist/);
    expect(await activityAttempts(handle, 'copySqliteVecPoints')).toBe(1);
  } finally {
    qdrant.double?.faults.clear();
  }
});

it('content PostgreSQL cannot store (\\u0000 in jsonb) fails once as ContentRejected naming the memory, not its content', async () => {
  const sourcePath = newStore();
  const db = new Database(sourcePath);
  const bad = db.prepare('SELECT id, content_hash FROM memories WHERE id = 123').get() as { id: number; content_hash: string };
  db.prepare('UPDATE memories SET content = ? WHERE id = ?').run('secret-ish text\u0000with a NUL', bad.id);
  db.close();
  const handle = await start(sourcePath, { kind: 'pgvector', url: postgres.url, schema: 'public', table: uniqueName('memories') });
  expect(await failureType(handle)).toBe('ContentRejected');
  const message = await failureMessage(handle);
  expect(message).toContain(`refused point(s): ${pointIdForContentHash(bad.content_hash)}`);
  expect(message).toMatch(/SQLSTATE 22/);
  expect(message).not.toContain('secret-ish');
  expect(await activityAttempts(handle, 'copySqliteVecPoints')).toBe(1);
});

it('a URL with a secret in its query is refused by the plan check without echoing it', async () => {
  const url = new URL(postgres.url);
  url.searchParams.set('password', 'hunter2-in-query');
  const handle = await start(newStore(), { kind: 'pgvector', url: url.toString(), schema: 'public', table: uniqueName('memories') });
  expect(await failureType(handle)).toBe('InvalidPlan');
  const message = await failureMessage(handle);
  expect(message).toMatch(/target\.url: must not contain a secret in its query \(password\).*PGUSER\/PGPASSWORD/);
  expect(message).not.toContain('hunter2');
});
