/**
 * tenantSchemaUpgrade while OpenMemory keeps writing (issue #7), on a real
 * Temporal server with real SQLite and PostgreSQL: rows written during the
 * approval wait, the apply, after it and through a rollback all survive;
 * restoring the backup is the operator's explicit, reported choice; a file
 * that is not OpenMemory fails in one attempt; history holds no memory content.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { payloadFingerprint } from '../activities/compare';
import { inspectOpenMemory, type OpenMemoryTarget } from '../activities/openmemory';
import { approveUpdate, pauseSignal, resumeSignal, rollbackSignal, type RollbackRequest } from '../workflows/messages';
import { tenantSchemaUpgrade, type TenantSchemaPlanInput } from '../workflows/tenant-schema-upgrade';
import {
  V11_COUNTS,
  createPostgresV11,
  createSqliteV11,
  createSqliteVecFile,
  execPostgres,
  execSqlite,
  pgMemories,
  sqliteMemories,
  startMemoryWriter,
  writtenId,
  type MemoriesConnection,
  type MemoryWriter,
} from './support/openmemory-fixtures';
import {
  activityAttempts,
  connectClient,
  failureMessage,
  failureType,
  startWorker,
  tempDir,
  uniqueQueue,
  waitForPhase,
  waitForStatus,
  writesSince,
} from './support/harness';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';

let client: Client;
let worker: { stop(): Promise<void> };
let pg: TestPostgres;
const taskQueue = uniqueQueue('tenant-schema-live');
const dir = tempDir();

beforeAll(async () => {
  [client, pg] = await Promise.all([connectClient(), startTestPostgres()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await pg?.stop();
});

const PG_MEMORIES = 'om_memories';

interface Engine {
  engine: 'sqlite' | 'postgres';
  fresh(): Promise<OpenMemoryTarget>;
  connect(target: OpenMemoryTarget): Promise<MemoriesConnection>;
  /** Runs statements one by one, each committed on its own; `t(role)` is the table's quoted name. */
  exec(target: OpenMemoryTarget, statements: (t: (role: string) => string) => string[]): Promise<void>;
  tableName(role: string): string;
}

const sqlite: Engine = {
  engine: 'sqlite',
  async fresh() {
    const file = path.join(dir, `${uniqueName('om')}.sqlite`);
    createSqliteV11(file);
    return { engine: 'sqlite', path: file };
  },
  connect: async (t) => sqliteMemories(sqlitePath(t)),
  exec: async (t, statements) => execSqlite(sqlitePath(t), statements((role) => `"${sqlite.tableName(role)}"`)),
  tableName: (role) => role,
};

const postgres: Engine = {
  engine: 'postgres',
  async fresh() {
    const schema = uniqueName('om');
    await createPostgresV11(pg.url, { schema, memories: PG_MEMORIES });
    return { engine: 'postgres', url: pg.url, schema, table: PG_MEMORIES };
  },
  connect: (t) => pgMemories(pg.url, { schema: pgSchema(t), memories: PG_MEMORIES }),
  async exec(t, statements) {
    const failure = await execPostgres(pg.url, statements((role) => `"${pgSchema(t)}"."${postgres.tableName(role)}"`));
    if (failure) throw new Error(`${failure.failed}: ${failure.error}`);
  },
  tableName: (role) => (role === 'memories' ? PG_MEMORIES : `openmemory_${role}`),
};

function sqlitePath(t: OpenMemoryTarget): string {
  if (t.engine !== 'sqlite') throw new Error('not sqlite');
  return t.path;
}

function pgSchema(t: OpenMemoryTarget): string {
  if (t.engine !== 'postgres') throw new Error('not postgres');
  return t.schema!;
}

function planFor(target: OpenMemoryTarget, overrides: Partial<TenantSchemaPlanInput> = {}): TenantSchemaPlanInput {
  return { target: target as TenantSchemaPlanInput['target'], approval: { approvers: ['alice'] }, ...overrides };
}

async function start(plan: TenantSchemaPlanInput) {
  return client.workflow.start(tenantSchemaUpgrade, { taskQueue, workflowId: uniqueName('wf'), args: [plan] });
}

async function contentsOf(h: Engine, target: OpenMemoryTarget): Promise<Map<string, string>> {
  const connection = await h.connect(target);
  try {
    return await connection.contents();
  } finally {
    await connection.close();
  }
}

/** The same ids, and the same content for each (compared by fingerprint, then exactly). */
function expectSameMemories(actual: Map<string, string>, expected: Map<string, string>): void {
  const sorted = (m: Map<string, string>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  expect(payloadFingerprint(sorted(actual))).toBe(payloadFingerprint(sorted(expected)));
  expect(sorted(actual)).toEqual(sorted(expected));
}

/** History as text, payloads decoded: start input, activity inputs, results, failures, heartbeat details. */
async function historyText(handle: WorkflowHandle): Promise<string> {
  const history = await handle.fetchHistory();
  return JSON.stringify(history, (_key, value) => (value instanceof Uint8Array ? Buffer.from(value).toString('utf8') : value));
}

/** Waits for one more write of each kind: this writer writes every 15 ms, so 10 s without one is a stall. */
const moreWritesOfEveryKind = (writer: MemoryWriter) => writesSince(writer, writer.counts(), { timeoutMs: 10_000 });

async function signalRollback(handle: WorkflowHandle, request: RollbackRequest): Promise<void> {
  await handle.signal(rollbackSignal, request);
}

describe.each([sqlite, postgres])('on $engine', (h) => {
  it('rows written while the upgrade waits for approval survive it', async () => {
    const target = await h.fresh();
    const handle = await start(planFor(target));
    await waitForPhase(handle, 'await-approval');
    const ids = Array.from({ length: 10 }, (_, i) => writtenId(i));
    await h.exec(target, (t) => ids.map((id, i) => `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at) VALUES ('${id}', 'written during approval ${i}', 'semantic', 1)`));
    const expected = await contentsOf(h, target);

    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();

    expect(result.outcome).toBe('cut-over');
    expect(result.applied[0].rowCounts[h.tableName('memories')]).toBe(V11_COUNTS.memories + 10);
    expect(result.notes.join('\n')).toMatch(new RegExp(`every row kept, checked under the write lock: .*${h.tableName('memories')} ${V11_COUNTS.memories + 10}`));
    expectSameMemories(await contentsOf(h, target), expected);
  });

  it('a live writer inserting, updating and deleting from before the start to after the end loses nothing: completed upgrade', async () => {
    const target = await h.fresh();
    const connection = await h.connect(target);
    const writer = await startMemoryWriter(connection);
    try {
      await moreWritesOfEveryKind(writer);
      const handle = await start(planFor(target));
      await waitForPhase(handle, 'await-approval');
      await moreWritesOfEveryKind(writer); // through the approval wait
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      const result = await handle.result();
      await moreWritesOfEveryKind(writer); // and on, into the upgraded schema
      const expected = await writer.stop();

      expect(result.outcome).toBe('cut-over');
      expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.2.0');
      expectSameMemories(await contentsOf(h, target), expected);
    } finally {
      await writer.stop().catch(() => undefined);
      await connection.close();
    }
  });

  it('a live writer inserting, updating and deleting from before the start to after the end loses nothing: upgrade, then rollback', async () => {
    const target = await h.fresh();
    const connection = await h.connect(target);
    const writer = await startMemoryWriter(connection);
    try {
      await moreWritesOfEveryKind(writer);
      const handle = await start(planFor(target, { rollbackWindow: '10m' }));
      await waitForPhase(handle, 'await-approval');
      await moreWritesOfEveryKind(writer); // through the approval wait
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      await waitForPhase(handle, 'rollback-window');
      await moreWritesOfEveryKind(writer); // into the upgraded schema

      await signalRollback(handle, { by: 'alice', reason: 'back to 1.1' });
      const result = await handle.result();
      await moreWritesOfEveryKind(writer); // and on, into the reverted schema
      const expected = await writer.stop();

      expect(result.outcome).toBe('rolled-back');
      expect(result.reverted).toMatchObject([{ version: '1.2.0', alreadyReverted: false }]);
      expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.1');
      expectSameMemories(await contentsOf(h, target), expected);

      const history = await historyText(handle);
      expect(history).toContain('revertOpenMemoryVersion'); // the decoding works: activity inputs are there
      for (const content of ['live write', 'live update', 'the user prefers']) expect(history).not.toContain(content);
    } finally {
      await writer.stop().catch(() => undefined);
      await connection.close();
    }
  });

  it('rollback keeps rows written after the upgrade; refuses while waypoints collide under the old key, then goes through', async () => {
    const target = await h.fresh();
    const handle = await start(planFor(target, { approval: { required: false }, rollbackWindow: '10m' }));
    await waitForPhase(handle, 'rollback-window');
    const collidingSrc = '00000000-0000-4000-8000-000000000002';
    // OpenMemory v1.2 at work: alice's memory, waypoint and users row; and bob's waypoint from a src_id the system user has too.
    await h.exec(target, (t) => [
      `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at, user_id) VALUES ('${writtenId(1)}', 'alice wrote this', 'semantic', 1, 'alice')`,
      `INSERT INTO ${t('waypoints')} (src_id, dst_id, user_id, weight) VALUES ('${writtenId(1)}', 'x', 'alice', 1)`,
      `INSERT INTO ${t('users')} (user_id, summary) VALUES ('alice', 'likes tea')`,
      `INSERT INTO ${t('waypoints')} (src_id, dst_id, user_id, weight) VALUES ('${collidingSrc}', 'y', 'bob', 1)`,
    ]);
    const memories = await contentsOf(h, target);

    await signalRollback(handle, { by: 'alice' });
    const refused = await waitForStatus(handle, (s) => s.notes.some((n) => n.startsWith('Refused rollback from alice')));
    expect(refused.phase).toBe('rollback-window');
    expect(refused.notes.join('\n')).toMatch(new RegExp(`src_id \\(${collidingSrc}\\): 2 rows\\. Nothing was changed`));
    expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.2.0');

    await h.exec(target, (t) => [`DELETE FROM ${t('waypoints')} WHERE user_id = 'bob'`]);
    await signalRollback(handle, { by: 'alice', reason: 'collision resolved' });
    const result = await handle.result();

    expect(result.outcome).toBe('rolled-back');
    expect(result.reverted[0]).toMatchObject({
      droppedValues: { [`${h.tableName('memories')}.user_id`]: 1, [`${h.tableName('waypoints')}.user_id`]: 1 },
      keptTables: { [h.tableName('users')]: 1 },
    });
    expect(result.notes.join('\n')).toMatch(/kept, holding rows written since: \S*users \(1 rows\)\.$/);
    expectSameMemories(await contentsOf(h, target), memories);
    const inspection = await inspectOpenMemory({ target });
    expect(inspection.rowCounts[h.tableName('waypoints')]).toBe(V11_COUNTS.waypoints + 1);
    expect(inspection.recordedVersions).toEqual([]);
  });

  it('restore-backup is refused without acceptLoss, saying what it would discard; with it, it restores and reports the loss', async () => {
    const target = await h.fresh();
    const original = await contentsOf(h, target);
    const handle = await start(planFor(target, { approval: { required: false }, rollbackWindow: '10m' }));
    await waitForPhase(handle, 'rollback-window');
    await h.exec(target, (t) => [
      ...[1, 2, 3].map((i) => `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at) VALUES ('${writtenId(i)}', 'after the upgrade', 'semantic', 1)`),
    ]);
    const withNewRows = await contentsOf(h, target);

    await signalRollback(handle, { by: 'alice', mode: 'restore-backup' });
    const memories = h.tableName('memories');
    // schema_version goes too: this run created it.
    const lossNote = `${memories} 3 of ${V11_COUNTS.memories + 3} rows (${V11_COUNTS.memories} in the backup), schema_version 1 of 1 rows (0 in the backup)`;
    const refused = await waitForStatus(handle, (s) => s.notes.some((n) => n.startsWith('Refused rollback from alice with mode "restore-backup"')));
    expect(refused.notes.at(-1)).toContain(`would discard ${lossNote}. Nothing was changed.`);
    expect(refused.phase).toBe('rollback-window');
    expectSameMemories(await contentsOf(h, target), withNewRows);

    await signalRollback(handle, { by: 'alice', mode: 'restore-backup', acceptLoss: true, reason: 'bad release' });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(result.restoreLosses?.find((l) => l.table === memories)).toEqual({ table: memories, rowsNow: V11_COUNTS.memories + 3, rowsInBackup: V11_COUNTS.memories, discarded: 3 });
    expect(result.notes.join('\n')).toContain(`Rolled back by restoring the backup (requested by alice: bad release), discarding ${lossNote}`);
    expectSameMemories(await contentsOf(h, target), original);
  });
});

it('a verification that fails after COMMIT rolls back with the reverse migration, keeping rows written since', async () => {
  const target = await sqlite.fresh();
  const file = sqlitePath(target);
  const handle = await start(planFor(target));
  await waitForPhase(handle, 'await-approval');
  // Hold the write lock so the apply waits, pause so verify waits after it, then let the apply through.
  const lock = new Database(file, { fileMustExist: true });
  try {
    lock.exec('BEGIN IMMEDIATE');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'cutover');
    await handle.signal(pauseSignal, { by: 'alice' });
    await waitForStatus(handle, (s) => s.paused);
  } finally {
    lock.exec('ROLLBACK');
    lock.close();
  }
  await waitForStatus(handle, (s) => s.phasesDone.includes('cutover'));
  // Between commit and verification: a live write, and someone drops an index the upgrade made.
  await sqlite.exec(target, (t) => [
    `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at, user_id) VALUES ('${writtenId(7)}', 'written after commit', 'semantic', 1, 'carol')`,
    'DROP INDEX idx_waypoints_user',
  ]);
  const expected = await contentsOf(sqlite, target);
  await handle.signal(resumeSignal, { by: 'alice' });
  const result = await handle.result();

  expect(result.outcome).toBe('rolled-back');
  expect(result.verification?.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['1.2.0 waypoints.user_id.index']);
  expect(result.notes.join('\n')).toMatch(/Rolled back \(verification failed: 1\.2\.0 waypoints\.user_id\.index: index idx_waypoints_user on waypoints\(user_id\): missing\), keeping every row: reversed 1\.2\.0/);
  expect(result.reverted[0].droppedValues).toEqual({ 'memories.user_id': 1 });
  expectSameMemories(await contentsOf(sqlite, target), expected);
  expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.1');
});

it("a backup file that is the database's -wal fails in one attempt as PathIsProtected, the database untouched", async () => {
  const target = await sqlite.fresh();
  const before = await contentsOf(sqlite, target);
  const handle = await start(planFor(target, { backup: { file: `${sqlitePath(target)}-wal` } }));
  expect(await failureType(handle)).toBe('PathIsProtected');
  expect(await activityAttempts(handle, 'backupOpenMemory')).toBe(1);
  expectSameMemories(await contentsOf(sqlite, target), before);
  expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.1');
});

it('an mcp-memory-service SQLite-vec file fails in one attempt as NotOpenMemory', async () => {
  const file = path.join(dir, `${uniqueName('sqlite-vec')}.db`);
  createSqliteVecFile(file);
  const handle = await start(planFor({ engine: 'sqlite', path: file }));
  expect(await failureType(handle)).toBe('NotOpenMemory');
  expect(await failureMessage(handle)).toMatch(/is not an OpenMemory \(v1\.1 or later\) database: table memories exists but lacks column\(s\) primary_sector/);
  expect(await activityAttempts(handle, 'inspectOpenMemory')).toBe(1);
});
