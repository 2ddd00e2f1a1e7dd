/**
 * Clean stops: a worker SIGTERMed mid-copy (a deploy) finishes the pages in
 * flight, records its cursor and exits; the next worker resumes with no batch
 * redone. A run cancelled during cutover finishes the cutover (it is not
 * cancellable halfway) and ends saying what stands. Worker processes as in
 * production, real Temporal, real SQLite, the Qdrant double (or QDRANT_URL).
 */
import type { Client } from '@temporalio/client';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { QdrantCollection } from '../activities/stores/qdrant';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { approveUpdate, rejectUpdate, statusQuery } from '../workflows/messages';
import { MigrationOutcome } from '../workflows/search-attributes';
import { sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { connectClient, spawnWorkerProcess, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

let client: Client;
let qdrant: TestQdrant;
const dir = tempDir();
const BATCH = 50;

beforeAll(async () => {
  [client, qdrant] = await Promise.all([connectClient(), startTestQdrant()]);
});

afterAll(async () => {
  await qdrant?.stop();
});

function planFor(memories: number, overrides: Partial<Omit<SqliteVecPlanInput, 'target'>> = {}) {
  const sourcePath = path.join(dir, `${uniqueName('store')}.db`);
  generateMcpStore(sourcePath, { count: memories, dimensions: 8, deletedEvery: 0 });
  return {
    source: { path: sourcePath },
    copy: { batchSize: BATCH, concurrency: 2 },
    cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
    ...overrides,
    target: { kind: 'qdrant' as const, url: qdrant.url, collection: uniqueName('memories') },
  };
}

it('SIGTERM during a copy: the worker exits cleanly after recording its cursor; the next one resumes with no batch redone', async () => {
  const memories = qdrant.double ? 8_000 : 80_000; // long enough to stop mid-way
  qdrant.double?.faults.set({ latencyMs: 50, onlyPaths: /\/points/ });
  const taskQueue = uniqueQueue('sigterm');
  const plan = planFor(memories);
  let worker = spawnWorkerProcess(taskQueue);
  try {
    const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('sigterm'), args: [plan] });
    await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= memories * 0.1, 120_000);
    worker.kill('SIGTERM');
    const exitCode = await new Promise((resolve) => worker.once('exit', resolve));
    expect(exitCode).toBe(0);
    const writtenBeforeStop = await new QdrantCollection(qdrant.url, plan.target.collection).count();
    expect(writtenBeforeStop).toBeGreaterThan(0);
    expect(writtenBeforeStop).toBeLessThan(memories);

    qdrant.double?.faults.clear();
    worker = spawnWorkerProcess(taskQueue);
    const waiting = await waitForPhase(handle, 'await-approval', 120_000);
    expect(waiting.report?.ok).toBe(true);
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'ops' }] });
    const result = await handle.result();
    const resumedAt = Number(result.notes.join('\n').match(/Copy resumed at (\d+) memories/)?.[1]);
    // Everything the stopped worker wrote was recorded before it exited: nothing is written twice.
    expect(resumedAt).toBe(writtenBeforeStop);
  } finally {
    qdrant.double?.faults.clear();
    worker.kill('SIGTERM');
  }
});

it('cancelled during cutover: the cutover completes, the run ends cancelled and says the cutover stands', async () => {
  const taskQueue = uniqueQueue('cancel');
  const worker = await startWorker(taskQueue);
  const plan = planFor(1_000, { rollbackWindow: '1h' });
  try {
    const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('cancel'), args: [plan] });
    await waitForPhase(handle, 'await-approval');
    qdrant.double?.faults.set({ latencyMs: 300, onlyPaths: /\/points/ }); // a cutover slow enough to cancel in
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
    await waitForPhase(handle, 'cutover');
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    qdrant.double?.faults.clear();

    const status = await handle.query(statusQuery);
    expect(status.phasesDone).toEqual(expect.arrayContaining(['cutover', 'verify']));
    expect(status.outcome).toBe('cancelled');
    expect(status.notes.join('\n')).toMatch(/Cancelled during rollback-window\. Done: .*cutover → verify\. The cutover stands/);
    expect(existsSync(plan.cutover.file) && JSON.parse(readFileSync(plan.cutover.file, 'utf8')).workflowId).toBe(handle.workflowId);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    expect((await handle.describe()).typedSearchAttributes.get(MigrationOutcome)).toBe('cancelled');
  } finally {
    qdrant.double?.faults.clear();
    await worker.stop();
  }
});
