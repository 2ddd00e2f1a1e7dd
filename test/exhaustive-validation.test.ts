/**
 * Exhaustive validation over a 100,000-memory copy: every point of source and
 * target compared side by side. One altered payload field, one missing point
 * and one extra point are found and named by id — end to end in the status of
 * a partitioned sqliteVecMigration, and at activity level on the same real
 * stores (the run's catch-up removes an extra point before validating, so the
 * extra one is planted after the run).
 */
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sqliteVecActivities } from '../activities/sqlite-vec';
import { statusLines, takeSnapshot } from '../client/status-view';
import type { MemoryPoint } from '../activities/stores/contract';
import { openReadOnly, watermarkOf } from '../activities/stores/sqlite';
import { openTarget } from '../activities/targets';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { pauseUpdate, rejectUpdate, resumeUpdate, type ExhaustiveComparison, type ValidationReport } from '../workflows/messages';
import { idRanges } from '../workflows/migration-run';
import type { TargetSpec } from '../workflows/plan-schemas';
import { SqliteVecPlan, sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { connectClient, failureType, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 100_000;
const PARTITIONS = 4;

let client: Client;
let worker: { stop(): Promise<void> };
let qdrant: TestQdrant;
let postgres: TestPostgres;
const taskQueue = uniqueQueue('exhaustive');
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 64, deletedEvery: 0 });
  [client, qdrant, postgres] = await Promise.all([connectClient(), startTestQdrant(), startTestPostgres()]);
  worker = await startWorker(taskQueue);
}, 300_000);

afterAll(async () => {
  await worker?.stop();
  await qdrant?.stop();
  await postgres?.stop();
});

const target: TargetSpec = { kind: 'qdrant', url: 'set in the test', collection: uniqueName('memories') };
const plan = (): SqliteVecPlanInput => ({
  source: { path: sourcePath },
  target: { ...target, url: qdrant.url },
  copy: { batchSize: 1_000, concurrency: 2, partitions: PARTITIONS },
  // One sampled point: the fast pre-check almost surely misses the altered point; the exhaustive pass must not.
  validation: { sampleSize: 1 },
  cutover: { file: path.join(dir, 'live.json') },
});

/** Points already in the target (copied, never rewritten by the copy), far from the rows the catch-up re-reads. */
async function copiedPoints(n: number): Promise<MemoryPoint[]> {
  const store = openTarget({ ...target, url: qdrant.url });
  try {
    const page = await store.readPage(null, 200);
    return page.points.filter((p) => (p.payload.source_id as number) < MEMORIES - 1_000).slice(0, n);
  } finally {
    await store.close();
  }
}

let altered: string;
let missing: string;
let report: ValidationReport;
let copySeconds: number;

it('a partitioned run validates every point and names the altered and the missing id in its status', async () => {
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('exhaustive'), args: [plan()] });
  await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= 5_000, 300_000);
  // Paused, every range commits its pages in flight and holds: what is in the target stays as written.
  await handle.executeUpdate(pauseUpdate, { args: [{ by: 'test' }] });
  await new Promise((r) => setTimeout(r, 3_000));
  const [toAlter, toDelete] = await copiedPoints(2);
  altered = toAlter.id;
  missing = toDelete.id;
  const store = openTarget({ ...target, url: qdrant.url });
  try {
    await store.upsert([{ ...toAlter, payload: { ...toAlter.payload, memory_type: 'tampered' } }]);
    await store.deletePoints([missing]);
  } finally {
    await store.close();
  }
  await handle.executeUpdate(resumeUpdate, { args: [{ by: 'test' }] });

  expect(await failureType(handle)).toBe('ValidationFailed');
  const status = await waitForStatus(handle, () => true);
  report = status.report!;
  const exhaustive = report.exhaustive!;
  expect(exhaustive).toMatchObject({ compared: MEMORIES, missing: 1, extra: 0, different: 1, missingIds: [missing], differentIds: [altered], ranges: PARTITIONS });
  expect(report.checks.find((c) => c.name === 'every point')).toMatchObject({ ok: false });
  expect(report.errors).toContain(`${altered}: payload memory_type differ`);
  expect(report.errors).toContain(`${missing}: missing from target`);
  expect(status.copy.ranges).toMatchObject({ count: PARTITIONS, done: PARTITIONS });
  const shown = statusLines(handle.workflowId, await takeSnapshot(handle)).join('\n'); // what `memshift status` prints
  expect(shown).toContain(`Missing ids: ${missing}`);
  expect(shown).toContain(`Different ids: ${altered}`);
  expect(shown).toMatch(/✗ every point: 100000 ids compared/);

  copySeconds = Number(status.notes.join('\n').match(/Copied \d+ memories in ([\d.]+)s/)![1]);
  console.log(`copy of ${MEMORIES}: ${copySeconds}s; exhaustive validation: ${exhaustive.seconds}s over ${exhaustive.ranges} ranges`);
  // Reads both whole stores: it must stay of the copy's order (the goal is half of it; see the pgvector case).
  expect(exhaustive.seconds).toBeLessThanOrEqual(copySeconds * 4 + 60);
}, 600_000);

it('at activity level on the same stores: an extra point is named too, and writes after the watermark are not failures', async () => {
  const store = openTarget({ ...target, url: qdrant.url });
  const [template] = await copiedPoints(3).then((points) => points.slice(2));
  const extra = randomUUID();
  try {
    const { source_id: _row, ...payload } = template.payload;
    await store.upsert([{ ...template, id: extra, payload }]);
  } finally {
    await store.close();
  }
  const activities = sqliteVecActivities({ client });
  const parsed = SqliteVecPlan.parse(plan());
  const db = openReadOnly(sourcePath);
  const watermark = watermarkOf(db);
  db.close();
  const validateAll = (mark: typeof watermark) =>
    Promise.all(
      idRanges(PARTITIONS).map(
        (range) => new MockActivityEnvironment().run(activities.validateSqliteVecRange, parsed, mark, range) as ReturnType<typeof activities.validateSqliteVecRange>,
      ),
    );

  const parts = await validateAll(watermark);
  const sum = (key: keyof ExhaustiveComparison) => parts.reduce((n, p) => n + (p[key] as number), 0);
  expect(sum('compared')).toBe(MEMORIES + 1);
  expect(sum('equal')).toBe(MEMORIES - 2);
  expect(parts.flatMap((p) => p.missingIds)).toEqual([missing]);
  expect(parts.flatMap((p) => p.extraIds)).toEqual([extra]);
  expect(parts.flatMap((p) => p.differentIds)).toEqual([altered]);
  expect(sum('writtenSince')).toBe(0);

  // Had the service written those rows after the watermark, they would be reported, not failures.
  const earlier = { maxId: 0, since: 0 };
  const live = await validateAll(earlier);
  expect(live.reduce((n, p) => n + p.missing + p.different, 0)).toBe(0);
  expect(live.reduce((n, p) => n + p.extra, 0)).toBe(1); // the planted point comes from no row at all
}, 300_000);

it('on pgvector: a clean 100k copy in ranges passes the pass over every point, which then names every kind of damage', async () => {
  const pgTarget: TargetSpec = { kind: 'pgvector', url: postgres.url, schema: 'public', table: uniqueName('memories') };
  const pgPlan: SqliteVecPlanInput = { ...plan(), target: pgTarget, copy: { batchSize: 1_000, concurrency: 2, partitions: 2 } };
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('exhaustive-pg'), args: [pgPlan] });
  const waiting = await waitForPhase(handle, 'await-approval', 600_000);
  const exhaustive = waiting.report!.exhaustive!;
  expect(exhaustive).toMatchObject({ compared: MEMORIES, equal: MEMORIES, missing: 0, extra: 0, different: 0, ranges: 2 });
  expect(waiting.report!.ok).toBe(true);
  const copied = Number(waiting.notes.join('\n').match(/Copied \d+ memories in ([\d.]+)s/)![1]);
  console.log(`pgvector: copy of ${MEMORIES} in ${copied}s; every point validated in ${exhaustive.seconds}s`);
  // Timing is measured in bench/, not asserted here (shared CI cores); this only catches a pass gone quadratic, with room for
  // the two phases meeting different loads.
  expect(exhaustive.seconds).toBeLessThanOrEqual(copied * 4 + 60);

  // The same 100k copy, tampered while approval waits: pgvector's pass compares digests of the stored bytes,
  // and must still name an altered payload field, a changed vector, a missing and an extra point.
  const store = openTarget(pgTarget);
  const [toAlter, toRevector, toDelete, template] = (await store.readPage(null, 200)).points.filter((p) => (p.payload.source_id as number) < MEMORIES - 1_000);
  const extra = randomUUID();
  try {
    await store.upsert([
      { ...toAlter, payload: { ...toAlter.payload, memory_type: 'tampered' } },
      { ...toRevector, vector: toRevector.vector.map((x, i) => (i === 5 ? x + 0.01 : x)) },
      { ...template, id: extra, payload: { ...template.payload, source_id: undefined } },
    ]);
    await store.deletePoints([toDelete.id]);
  } finally {
    await store.close();
  }
  const activities = sqliteVecActivities({ client });
  const db = openReadOnly(sourcePath);
  const watermark = watermarkOf(db);
  db.close();
  const parts = await Promise.all(
    idRanges(2).map((range) => new MockActivityEnvironment().run(activities.validateSqliteVecRange, SqliteVecPlan.parse(pgPlan), watermark, range) as ReturnType<typeof activities.validateSqliteVecRange>),
  );
  const sum = (key: keyof ExhaustiveComparison) => parts.reduce((n, p) => n + (p[key] as number), 0);
  expect(sum('compared')).toBe(MEMORIES + 1);
  expect(sum('equal')).toBe(MEMORIES - 3);
  expect(parts.flatMap((p) => p.missingIds)).toEqual([toDelete.id]);
  expect(parts.flatMap((p) => p.extraIds)).toEqual([extra]);
  expect(parts.flatMap((p) => p.differentIds).sort()).toEqual([toAlter.id, toRevector.id].sort());
  expect(parts.flatMap((p) => p.problems)).toEqual(expect.arrayContaining([`${toAlter.id}: payload memory_type differ`, `${toRevector.id}: vector differs`]));

  await handle.executeUpdate(rejectUpdate, { args: [{ by: 'test' }] });
  expect((await handle.result()).outcome).toBe('rejected');
}, 900_000);
