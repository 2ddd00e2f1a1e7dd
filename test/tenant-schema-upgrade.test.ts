/**
 * tenantSchemaUpgrade end to end on a real Temporal server with a real
 * worker, against an OpenMemory v1.1 SQLite file and an OpenMemory v1.1
 * PostgreSQL schema (PGlite or DATABASE_URL), each with data.
 */
import type { Client } from '@temporalio/client';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectOpenMemory, type OpenMemoryTarget } from '../activities/openmemory';
import { VERSIONS } from '../activities/openmemory/migrations';
import { approveUpdate, rejectSignal, rollbackSignal } from '../workflows/messages';
import { tenantSchemaUpgrade, type TenantSchemaPlanInput } from '../workflows/tenant-schema-upgrade';
import {
  HAND_MADE_PARTIAL_SQLITE,
  V11_COUNTS,
  createPostgresV11,
  createSqliteV11,
  execPostgres,
  execSqlite,
  handMadePartialPostgres,
  pgRows,
  pgSchemaState,
  sha256File,
  sqliteRows,
  withPg,
} from './support/openmemory-fixtures';
import { connectClient, failureMessage, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';

type Role = 'memories' | 'vectors' | 'waypoints';
const ROLES: Role[] = ['memories', 'vectors', 'waypoints'];
const ALL_CHANGES = VERSIONS.find((v) => v.id === '1.2.0')!.changes.map((c) => c.id);
/** What the hand-made partial state (fixtures) already has. */
const PARTIAL_PRESENT = ['memories.user_id', 'memories.user_id.index', 'vectors.user_id', 'users'];

let client: Client;
let worker: { stop(): Promise<void> };
let pg: TestPostgres;
const taskQueue = uniqueQueue('tenant-schema');
const dir = tempDir();

beforeAll(async () => {
  [client, pg] = await Promise.all([connectClient(), startTestPostgres()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await pg?.stop();
});

interface Engine {
  engine: 'sqlite' | 'postgres';
  fresh(): Promise<OpenMemoryTarget>;
  tableName(role: Role): string;
  /** The whole database, exactly: file bytes (and no sidecars), or every definition and row. */
  state(target: OpenMemoryTarget): Promise<unknown>;
  rows(target: OpenMemoryTarget, role: Role): Promise<Record<string, unknown>[]>;
  /** Runs statements one by one, each committed on its own: a migration script killed after the last. */
  exec(target: OpenMemoryTarget, statements: string[]): Promise<void>;
  handMadePartial(target: OpenMemoryTarget): string[];
  schemaVersion(target: OpenMemoryTarget): Promise<string[]>;
}

const PG_MEMORIES = 'om_memories';
const sqlitePath = (t: OpenMemoryTarget) => (t.engine === 'sqlite' ? t.path : assertNever());
const pgSchema = (t: OpenMemoryTarget) => (t.engine === 'postgres' ? t.schema! : assertNever());
function assertNever(): never {
  throw new Error('wrong engine');
}

const sqlite: Engine = {
  engine: 'sqlite',
  tableName: (role) => role,
  async fresh() {
    const file = path.join(dir, `${uniqueName('om')}.sqlite`);
    createSqliteV11(file);
    return { engine: 'sqlite', path: file };
  },
  async state(t) {
    const file = sqlitePath(t);
    return { sha256: sha256File(file), sidecars: ['-wal', '-shm', '-journal'].filter((s) => existsSync(file + s)) };
  },
  rows: async (t, role) => sqliteRows(sqlitePath(t), role),
  exec: async (t, statements) => execSqlite(sqlitePath(t), statements),
  handMadePartial: () => HAND_MADE_PARTIAL_SQLITE,
  async schemaVersion(t) {
    return sqliteRows(sqlitePath(t), 'schema_version').map((r) => r.version as string);
  },
};

const postgres: Engine = {
  engine: 'postgres',
  tableName: (role) => (role === 'memories' ? PG_MEMORIES : `openmemory_${role}`),
  async fresh() {
    const schema = uniqueName('om');
    await createPostgresV11(pg.url, { schema, memories: PG_MEMORIES });
    return { engine: 'postgres', url: pg.url, schema, table: PG_MEMORIES };
  },
  state: (t) => pgSchemaState(pg.url, pgSchema(t)),
  rows: (t, role) => pgRows(pg.url, pgSchema(t), postgres.tableName(role)),
  async exec(_t, statements) {
    const failure = await execPostgres(pg.url, statements);
    if (failure) throw new Error(`${failure.failed}: ${failure.error}`);
  },
  handMadePartial: (t) => handMadePartialPostgres({ schema: pgSchema(t), memories: PG_MEMORIES }),
  async schemaVersion(t) {
    return (await pgRows(pg.url, pgSchema(t), 'schema_version')).map((r) => r.version as string);
  },
};

function planFor(target: OpenMemoryTarget, overrides: Partial<TenantSchemaPlanInput> = {}): TenantSchemaPlanInput {
  return { target: target as TenantSchemaPlanInput['target'], approval: { approvers: ['alice', 'bob'] }, ...overrides };
}

async function start(plan: unknown) {
  return client.workflow.start(tenantSchemaUpgrade, { taskQueue, workflowId: uniqueName('wf'), args: [plan as TenantSchemaPlanInput] });
}

async function allRows(h: Engine, target: OpenMemoryTarget) {
  return Object.fromEntries(await Promise.all(ROLES.map(async (r) => [r, await h.rows(target, r)] as const)));
}

const withoutUserId = (rows: Record<string, unknown>[]) => rows.map(({ user_id: _, ...rest }) => rest);

describe.each([sqlite, postgres])('on $engine', (h) => {
  it('plans, backs up, waits for approval (update), applies 1.2.0 and verifies; a re-run is a no-op', async () => {
    const target = await h.fresh();
    const before = await allRows(h, target);
    const handle = await start(planFor(target));

    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.phasesDone).toEqual(['preflight', 'backup']);
    expect(waiting.notes.join('\n')).toMatch(/is at v1\.1, target 1\.2\.0/);
    expect(waiting.notes.join('\n')).toMatch(/Will run for 1\.2\.0, in one transaction:\n.*ADD COLUMN user_id TEXT/);
    expect(await h.schemaVersion(target).catch(() => [])).toEqual([]); // nothing applied before approval

    const refused = await handle.executeUpdate(approveUpdate, { args: [{ by: 'mallory' }] }).catch((e: Error) => e);
    expect((refused as Error & { cause?: Error }).cause?.message).toMatch(/'mallory' is not on this plan's approver list/);
    const approved = await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'backup checked' }] });
    expect(approved.approval.decision).toMatchObject({ by: 'alice', approved: true });

    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result).toMatchObject({ upToDate: false, fromVersion: '1.1', targetVersion: '1.2.0' });
    expect(result.applied).toEqual([
      {
        version: '1.2.0',
        applied: ALL_CHANGES,
        alreadyRecorded: false,
        statements: result.steps[0].sql.length,
        rowCounts: expect.objectContaining({ [h.tableName('waypoints')]: V11_COUNTS.waypoints }),
      },
    ]);
    expect(result.verification?.ok).toBe(true);
    expect(result.verification?.checks.filter((c) => !c.ok)).toEqual([]);
    expect(await h.schemaVersion(target)).toEqual(['1.2.0']);
    for (const role of ROLES) {
      const after = await h.rows(target, role);
      expect(after, role).toHaveLength(before[role].length);
      expect(withoutUserId(after), role).toEqual(before[role]);
      expect(after.every((r) => r.user_id === null), `${role}.user_id`).toBe(true);
    }
    const inspection = await inspectOpenMemory({ target });
    expect(inspection.currentVersion).toBe('1.2.0');
    expect(inspection.versions[0].status).toBe('recorded');
    if (result.backup?.engine === 'sqlite') expect(existsSync(result.backup.file)).toBe(true);

    // Again: preflight finds nothing to do, no backup, no approval, nothing changed.
    const upgraded = await h.state(target);
    const again = await (await start(planFor(target))).result();
    expect(again).toMatchObject({ outcome: 'up-to-date', upToDate: true, fromVersion: '1.2.0', steps: [], applied: [], backup: null });
    expect(again.notes.join('\n')).toMatch(/Already at 1\.2\.0: nothing to do/);
    expect(await h.state(target)).toEqual(upgraded);
  });

  it('reject: the schema is never touched', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    const handle = await start(planFor(target));
    await waitForPhase(handle, 'await-approval');
    await handle.signal(rejectSignal, { by: 'bob', reason: 'not in the maintenance window' });
    const result = await handle.result();
    expect(result.outcome).toBe('rejected');
    expect(result.applied).toEqual([]);
    expect(result.notes.join('\n')).toMatch(/Rejected by bob: not in the maintenance window[\s\S]*The schema was not touched/);
    expect(await h.state(target)).toEqual(original);
  });

  it('rollback signal after the upgrade reverses it: the v1.1 schema and every row back', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    const rows = await allRows(h, target);
    const handle = await start(planFor(target, { rollbackWindow: '5m' }));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
    await waitForPhase(handle, 'rollback-window');
    expect(await h.schemaVersion(target)).toEqual(['1.2.0']);
    expect(await h.state(target)).not.toEqual(original);

    await handle.signal(rollbackSignal, { by: 'mallory' }); // ignored: not an approver
    await handle.signal(rollbackSignal, { by: 'alice', reason: 'OpenMemory 1.1 still deployed' });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(result.notes.join('\n')).toMatch(/Ignored rollback: 'mallory' is not on this plan's approver list/);
    expect(result.notes.join('\n')).toMatch(/Rolled back \(requested by alice: OpenMemory 1\.1 still deployed\), keeping every row: reversed 1\.2\.0 in one transaction/);
    expect(result.reverted).toMatchObject([{ version: '1.2.0', reverted: [...ALL_CHANGES].reverse(), droppedValues: {}, keptTables: {} }]);
    expect(await allRows(h, target)).toEqual(rows);
    const inspection = await inspectOpenMemory({ target });
    expect(inspection.recordedVersions).toEqual([]);
    expect(inspection.versions[0].status).toBe('not-started');
    if (h.engine === 'postgres') expect(await h.state(target)).toEqual(original); // SQLite's file bytes differ: rebuilt, not copied back
  });

  it('dry run lists the exact SQL and the current state, and changes nothing', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    const result = await (await start(planFor(target, { dryRun: true }))).result();
    expect(result.outcome).toBe('dry-run');
    expect(result.backup).toBeNull();
    expect(result.steps).toHaveLength(1);
    const { sql, changes, status } = result.steps[0];
    expect({ status, changes }).toEqual({ status: 'not-started', changes: ALL_CHANGES });
    expect(sql[0]).toMatch(/^ALTER TABLE .*"(memories|om_memories)" ADD COLUMN user_id TEXT$/);
    expect(sql.at(-1)).toMatch(/^INSERT INTO .*"schema_version" \(version, applied_at\) VALUES \('1\.2\.0', /);
    const notes = result.notes.join('\n');
    expect(notes).toContain(`Would run for 1.2.0, in one transaction:\n${sql.join(';\n')};`);
    expect(notes).toMatch(new RegExp(`rows: .*waypoints ${V11_COUNTS.waypoints}`));
    expect(notes).toMatch(/1\.2\.0: not-started; present: \[\]; to make: \[memories\.user_id, /);
    expect(notes).toMatch(/Nothing was changed/);
    expect(await h.state(target)).toEqual(original);
  });

  it('finishes a database half-migrated by a script killed between statements, reporting what it found', async () => {
    const target = await h.fresh();
    const waypoints = await h.rows(target, 'waypoints');
    await h.exec(target, h.handMadePartial(target));
    const handle = await start(planFor(target, { approval: { required: false } }));
    const result = await handle.result();

    expect(result.outcome).toBe('cut-over');
    const toMake = ALL_CHANGES.filter((c) => !PARTIAL_PRESENT.includes(c));
    expect(result.steps.map((s) => [s.version, s.status, s.changes])).toEqual([['1.2.0', 'partial', toMake]]);
    expect(result.notes).toContain(`1.2.0: partial; present: [${PARTIAL_PRESENT.join(', ')}]; to make: [${toMake.join(', ')}].`);
    expect(result.notes.join('\n')).toMatch(/does not require approval/);
    // Nothing already there was made again.
    expect(result.steps[0].sql.filter((s) => /(memories|vectors)" ADD COLUMN|^CREATE TABLE \S*users/.test(s))).toEqual([]);
    expect(result.applied[0]).toMatchObject({ version: '1.2.0', applied: toMake });
    expect(result.verification?.checks.filter((c) => !c.ok)).toEqual([]);
    expect(await h.schemaVersion(target)).toEqual(['1.2.0']);
    expect(withoutUserId(await h.rows(target, 'waypoints'))).toEqual(waypoints);
  });

  it('refuses an unknown target version and a plan with an unknown field, changing nothing', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    const unknown = await start(planFor(target, { targetVersion: '9.9.9' }));
    expect(await failureMessage(unknown)).toMatch(/unknown target version "9\.9\.9"; known versions: 1\.2\.0/);
    const extra = await start({ ...planFor(target), approvers: ['alice'] });
    expect(await failureMessage(extra)).toMatch(/^Invalid plan — fix these fields: \(plan\): Unrecognized key: "approvers"/);
    const extraInTarget = await start(planFor({ ...target, table_name: 'x' } as unknown as OpenMemoryTarget));
    expect(await failureMessage(extraInTarget)).toMatch(/^Invalid plan — fix these fields: target: Unrecognized key: "table_name"/);
    expect(await h.state(target)).toEqual(original);
  });
});

describe('SQLite only', () => {
  it('refuses an SQLite database that is not OpenMemory, changing nothing', async () => {
    const file = path.join(dir, 'todo.sqlite');
    const db = new Database(file);
    db.exec('CREATE TABLE memories (id TEXT PRIMARY KEY, body TEXT); CREATE TABLE todo (id INTEGER)');
    db.close();
    const before = sha256File(file);
    const handle = await start(planFor({ engine: 'sqlite', path: file }));
    expect(await failureMessage(handle)).toMatch(
      /todo\.sqlite is not an OpenMemory \(v1\.1 or later\) database: table memories exists but lacks column\(s\) content, primary_sector, created_at; table vectors: missing.*Tables found: memories, todo/,
    );
    expect(sha256File(file)).toBe(before);
    expect(existsSync(path.join(dir, 'missing.sqlite'))).toBe(false);
    const missing = await start(planFor({ engine: 'sqlite', path: path.join(dir, 'missing.sqlite') }));
    expect(await failureMessage(missing)).toMatch(/no SQLite database at .*missing\.sqlite/);
    expect(existsSync(path.join(dir, 'missing.sqlite'))).toBe(false);
  });

  it('writes the backup where the plan says, and refuses backup.schema for SQLite', async () => {
    const target = await sqlite.fresh();
    const original = await sqlite.state(target);
    const file = path.join(dir, `${uniqueName('chosen')}.bak`);
    const result = await (await start(planFor(target, { backup: { file }, approval: { timeout: '1s' } }))).result();
    expect(result.outcome).toBe('approval-timed-out');
    expect(result.backup).toMatchObject({ engine: 'sqlite', file });
    expect(sha256File(file)).toBe((original as { sha256: string }).sha256);
    expect(await sqlite.state(target)).toEqual(original);

    const wrong = await start(planFor(target, { backup: { schema: 'bak' } }));
    expect(await failureMessage(wrong)).toMatch(/backup\.schema: is for PostgreSQL targets/);
  });
});

describe('PostgreSQL only', () => {
  it('refuses a schema or table that does not exist, a schema that is not OpenMemory, and a URL with a password', async () => {
    const target = (await postgres.fresh()) as Extract<OpenMemoryTarget, { engine: 'postgres' }>;
    const original = await postgres.state(target);

    const noSchema = await start(planFor({ ...target, schema: 'no_such_schema' }));
    expect(await failureMessage(noSchema)).toMatch(/schema "no_such_schema" does not exist in postgres:\/\/.* \(OM_PG_SCHEMA\)/);
    const noTable = await start(planFor({ ...target, table: 'no_such_table' }));
    expect(await failureMessage(noTable)).toMatch(/the plan's table \(OM_PG_TABLE\) ".*"\."no_such_table" does not exist .*; tables there: om_memories/);

    const unrelated = uniqueName('shop');
    await withPg(pg.url, (c) => c.query(`CREATE SCHEMA "${unrelated}"; CREATE TABLE "${unrelated}".orders (id INT)`));
    const notOm = await start(planFor({ engine: 'postgres', url: pg.url, schema: unrelated }));
    expect(await failureMessage(notOm)).toMatch(/is not an OpenMemory \(v1\.1 or later\) database: .*Tables found: orders/);

    const withPassword = new URL(pg.url);
    withPassword.username = 'om';
    withPassword.password = 'secret';
    const secret = await start(planFor({ ...target, url: withPassword.toString() }));
    const message = await failureMessage(secret);
    expect(message).toMatch(/target\.url: must not contain a password/);
    expect(message).not.toContain('secret');

    expect(await postgres.state(target)).toEqual(original);
  });

  it('a row lost inside the apply fails the check before COMMIT: the transaction rolls back, no backup restored', async () => {
    const target = (await postgres.fresh()) as Extract<OpenMemoryTarget, { engine: 'postgres' }>;
    const s = `"${target.schema}"`;
    const trigger = uniqueName('lose_a_waypoint');
    // Stands in for a faulty migration step: when 1.2.0 creates the waypoints user_id index, one waypoint disappears.
    await withPg(pg.url, (c) =>
      c.query(`
        CREATE FUNCTION ${s}.lose_a_waypoint() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = '${target.schema}.openmemory_waypoints_user_idx') THEN
            DELETE FROM ${s}.openmemory_waypoints WHERE src_id = (SELECT min(src_id) FROM ${s}.openmemory_waypoints);
          END IF;
        END $fn$;
        CREATE EVENT TRIGGER ${trigger} ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION ${s}.lose_a_waypoint();`),
    );
    try {
      const original = await postgres.state(target);
      const handle = await start(planFor(target, { approval: { required: false } }));
      expect(await failureMessage(handle)).toMatch(
        new RegExp(`^1\\.2\\.0's SQL ran but rows in openmemory_waypoints: ${V11_COUNTS.waypoints} before, ${V11_COUNTS.waypoints - 1} after\\. Rolled back: .* is as it was before 1\\.2\\.0\\.$`),
      );
      expect(await postgres.state(target)).toEqual(original);
    } finally {
      await withPg(pg.url, (c) => c.query(`DROP EVENT TRIGGER IF EXISTS ${trigger}`));
    }
  });

  it("finishes what the seed's own script leaves when its ADD PRIMARY KEY fails on NULL user_id", async () => {
    const target = (await postgres.fresh()) as Extract<OpenMemoryTarget, { engine: 'postgres' }>;
    const s = `"${target.schema}"`;
    const failure = await execPostgres(pg.url, [
      `ALTER TABLE ${s}."${PG_MEMORIES}" ADD COLUMN user_id TEXT`,
      `ALTER TABLE ${s}.openmemory_waypoints ADD COLUMN user_id TEXT`,
      `ALTER TABLE ${s}.openmemory_waypoints DROP CONSTRAINT openmemory_waypoints_pkey`,
      `ALTER TABLE ${s}.openmemory_waypoints ADD PRIMARY KEY (src_id, user_id)`,
    ]);
    expect(failure?.error).toMatch(/contains null values/);
    const backupSchema = uniqueName('om_bak');
    const handle = await start(planFor(target, { backup: { schema: backupSchema } }));
    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.notes.join('\n')).toMatch(/1\.2\.0: partial; present: \[memories\.user_id, waypoints\.user_id\]; to make: \[memories\.user_id\.index, vectors\.user_id, /);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result.backup).toMatchObject({ engine: 'postgres', schema: backupSchema });
    expect(result.verification?.ok).toBe(true);
    expect(await postgres.schemaVersion(target)).toEqual(['1.2.0']);
  });
});
