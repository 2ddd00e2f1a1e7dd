/**
 * tenantSchemaUpgrade with its worker — a process of its own, as in
 * production — SIGKILLed while applyOpenMemoryVersion runs, then a new worker
 * started: the dead attempt is noticed within the heartbeat timeout, nothing
 * of it was committed, and the retry finishes v1.2 with every row kept and
 * says what happened.
 *
 * The kill lands inside the apply deterministically: the test holds a lock
 * the apply needs, so the apply waits on it (heartbeating where it is) until
 * the test kills the worker.
 * - SQLite: a write lock (BEGIN IMMEDIATE) — the apply waits to begin its transaction.
 * - PostgreSQL (not on PGlite, which runs one transaction at a time and so
 *   cannot block one midway): ACCESS EXCLUSIVE on waypoints —
 *   the apply, locking the OpenMemory tables in order in its open
 *   transaction, holds memories and vectors and waits for waypoints.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectOpenMemory, type OpenMemoryTarget } from '../activities/openmemory';
import { VERSIONS } from '../activities/openmemory/migrations';
import { approveUpdate, statusQuery } from '../workflows/messages';
import { tenantSchemaUpgrade, type TenantSchemaPlanInput, type TenantSchemaResult } from '../workflows/tenant-schema-upgrade';
import { createPostgresV11, createSqliteV11, pgRows, pgSchemaState, sha256File, sqliteRows, withPg } from './support/openmemory-fixtures';
import { connectClient, tempDir, uniqueQueue, waitForPhase, spawnWorkerProcess } from './support/harness';
import { postgresIsPglite, startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';

const ROLES = ['memories', 'vectors', 'waypoints'] as const;
const ALL_CHANGES = VERSIONS.find((v) => v.id === '1.2.0')!.changes.map((c) => c.id);
/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED: running on a worker, not waiting for a retry. */
const STARTED = 2;

let client: Client;
const dir = tempDir();
const workers: ChildProcess[] = [];

beforeAll(async () => {
  client = await connectClient();
});

afterAll(() => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
});

/** A worker in its own process, so it can be SIGKILLed. */
function spawnWorker(taskQueue: string): ChildProcess {
  const worker = spawnWorkerProcess(taskQueue);
  workers.push(worker);
  return worker;
}

async function sigkill(worker: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.kill('SIGKILL');
  await exited;
}

interface ApplyAttempt {
  attempt: number;
  /** The attempt's last heartbeat as Temporal has it (activities/openmemory: { attempt, step }). */
  heartbeat: { attempt: number; step: string } | null;
}

/** Polls Temporal until the workflow's applyOpenMemoryVersion is running and its current attempt's heartbeat matches `step`. */
async function applyRunningAt(handle: WorkflowHandle, step: RegExp, timeoutMs = 60_000): Promise<ApplyAttempt> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const pending = (await handle.describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'applyOpenMemoryVersion');
    const payload = pending?.heartbeatDetails?.payloads?.[0];
    const heartbeat = payload ? (defaultPayloadConverter.fromPayload(payload) as ApplyAttempt['heartbeat']) : null;
    last = { state: pending?.state, attempt: pending?.attempt, heartbeat };
    if (pending && pending.state === STARTED && heartbeat !== null && heartbeat.attempt === pending.attempt && step.test(heartbeat.step)) {
      return { attempt: pending.attempt!, heartbeat };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`applyOpenMemoryVersion never ran at ${step}; last seen: ${JSON.stringify(last)}`);
}

function planFor(target: OpenMemoryTarget): TenantSchemaPlanInput {
  return { target: target as TenantSchemaPlanInput['target'], approval: { approvers: ['alice'] } };
}

const withoutUserId = (rows: Record<string, unknown>[]) => rows.map(({ user_id: _, ...rest }) => rest);

/** What every crash case ends with: v1.2 by the retried apply, every row kept, and notes that say so. */
async function expectFinishedAfterCrash(
  result: TenantSchemaResult,
  killed: ApplyAttempt,
  before: Record<string, Record<string, unknown>[]>,
  after: Record<string, Record<string, unknown>[]>,
  schemaVersion: string[],
) {
  expect(result.outcome).toBe('cut-over');
  expect(result.applied).toEqual([
    {
      version: '1.2.0',
      applied: ALL_CHANGES,
      alreadyRecorded: false,
      statements: result.steps[0].sql.length,
      rowCounts: expect.any(Object),
      retry: { attempt: killed.attempt + 1, previousAttemptAt: killed.heartbeat!.step, found: 'not-started' },
    },
  ]);
  const notes = result.notes.join('\n');
  expect(notes).toContain(
    `Applying 1.2.0 took ${killed.attempt + 1} attempts (the one before stopped without finishing, last heard at "${killed.heartbeat!.step}"); ` +
      `attempt ${killed.attempt + 1} found 1.2.0 not-started, as planned: nothing of an earlier attempt had been committed`,
  );
  expect(notes).toMatch(/Applied 1\.2\.0: \d+ statements in one transaction/);
  expect(result.verification?.checks.filter((c) => !c.ok)).toEqual([]);
  expect(result.verification?.ok).toBe(true);
  expect(schemaVersion).toEqual(['1.2.0']);
  for (const role of ROLES) {
    expect(after[role], role).toHaveLength(before[role].length);
    expect(withoutUserId(after[role]), role).toEqual(before[role]);
    expect(after[role].every((r) => r.user_id === null), `${role}.user_id`).toBe(true);
  }
}

it('SQLite: worker SIGKILLed while apply waits for the write lock; a new worker finishes v1.2, every row kept', async () => {
  const taskQueue = uniqueQueue('schema-crash');
  const file = path.join(dir, `${uniqueName('om')}.sqlite`);
  createSqliteV11(file);
  const target: OpenMemoryTarget = { engine: 'sqlite', path: file };
  const before = Object.fromEntries(ROLES.map((r) => [r, sqliteRows(file, r)]));

  let worker = spawnWorker(taskQueue);
  const handle = await client.workflow.start(tenantSchemaUpgrade, { taskQueue, workflowId: uniqueName('schema-crash'), args: [planFor(target)] });
  await waitForPhase(handle, 'await-approval');
  const backedUp = sha256File(file);

  // Another writer holds the database, as a running OpenMemory would: the apply cannot begin its transaction.
  const lock = new Database(file, { fileMustExist: true });
  let killed: ApplyAttempt;
  try {
    lock.exec('BEGIN IMMEDIATE');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    killed = await applyRunningAt(handle, /^1\.2\.0: beginning the transaction$/);
    expect((await handle.query(statusQuery)).phase).toBe('cutover');
    await sigkill(worker);

    // Still exactly v1.1: the dead attempt never began, let alone committed.
    expect(sha256File(file)).toBe(backedUp);
    const inspection = await inspectOpenMemory({ target });
    expect(inspection.currentVersion).toBe('1.1');
    expect(inspection.versions.map((v) => v.status)).toEqual(['not-started']);
  } finally {
    lock.exec('ROLLBACK');
    lock.close();
  }

  worker = spawnWorker(taskQueue);
  try {
    const result = await handle.result(); // nothing approved again
    const after = Object.fromEntries(ROLES.map((r) => [r, sqliteRows(file, r)]));
    const versions = sqliteRows(file, 'schema_version').map((r) => r.version as string);
    await expectFinishedAfterCrash(result, killed, before, after, versions);
    expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.2.0');
  } finally {
    await sigkill(worker);
  }
});

describe.skipIf(postgresIsPglite)('PostgreSQL server', () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    pg = await startTestPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('worker SIGKILLed between statements of the open transaction; PostgreSQL rolls it back, a new worker finishes v1.2', async () => {
    const taskQueue = uniqueQueue('schema-crash-pg');
    const schema = uniqueName('om');
    const s = `"${schema}"`;
    await createPostgresV11(pg.url, { schema, memories: 'om_memories' });
    const target: OpenMemoryTarget = { engine: 'postgres', url: pg.url, schema, table: 'om_memories' };
    const tableOf = (role: (typeof ROLES)[number]) => (role === 'memories' ? 'om_memories' : `openmemory_${role}`);
    const rows = async () => Object.fromEntries(await Promise.all(ROLES.map(async (r) => [r, await pgRows(pg.url, schema, tableOf(r))] as const)));
    const before = await rows();

    let worker = spawnWorker(taskQueue);
    const handle = await client.workflow.start(tenantSchemaUpgrade, { taskQueue, workflowId: uniqueName('schema-crash-pg'), args: [planFor(target)] });
    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.notes.join('\n')).toMatch(/Will run for 1\.2\.0, in one transaction:\nALTER TABLE .*"om_memories" ADD COLUMN user_id TEXT/);
    const original = await pgSchemaState(pg.url, schema);

    let killed: ApplyAttempt;
    await withPg(pg.url, async (lock) => {
      // A session holding waypoints: the apply locks memories and vectors, then waits.
      await lock.query(`BEGIN; LOCK TABLE ${s}.openmemory_waypoints IN ACCESS EXCLUSIVE MODE`);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      killed = await applyRunningAt(handle, /^1\.2\.0: locking the tables$/);
      expect((await handle.query(statusQuery)).phase).toBe('cutover');

      // The worker's session: waiting for waypoints, holding the tables it locked before it.
      const { rows: waiters } = await lock.query<{ pid: number }>(
        `SELECT pid FROM pg_locks WHERE relation = $1::regclass AND NOT granted`,
        [`${s}.openmemory_waypoints`],
      );
      expect(waiters).toHaveLength(1);
      const { pid } = waiters[0];
      const { rows: held } = await lock.query<{ relname: string }>(
        `SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE l.pid = $1 AND l.granted AND l.mode = 'AccessExclusiveLock' AND c.relkind = 'r' ORDER BY 1`,
        [pid],
      );
      expect(held.map((r) => r.relname)).toEqual(['om_memories', 'openmemory_vectors']);

      await sigkill(worker);
      // The orphaned session ends (at its lock_timeout at the latest), its transaction never committed.
      const deadline = Date.now() + 20_000;
      // (Asked on a connection of its own: pg_stat_activity is read once per transaction, and `lock` is in one.)
      while ((await withPg(pg.url, (c) => c.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [pid]))).rowCount) {
        if (Date.now() > deadline) throw new Error(`session ${pid} of the killed worker is still there`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await lock.query('COMMIT');
    });
    // Rolled back: the schema is exactly as it was at approval — no user_id column, no index, no schema_version.
    expect(await pgSchemaState(pg.url, schema)).toEqual(original);

    worker = spawnWorker(taskQueue);
    try {
      const result = await handle.result();
      const versions = (await pgRows(pg.url, schema, 'schema_version')).map((r) => r.version as string);
      await expectFinishedAfterCrash(result, killed!, before, await rows(), versions);
    } finally {
      await sigkill(worker);
    }
  });
});
