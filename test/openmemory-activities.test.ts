/**
 * The tenantSchemaUpgrade activities against real databases: an OpenMemory
 * v1.1 SQLite file and an OpenMemory v1.1 PostgreSQL schema, each with data.
 * One scenario list, run on both engines.
 */
import { ApplicationFailure } from '@temporalio/common';
import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenMemoryTarget } from '../activities/openmemory/database';
import {
  applyOpenMemoryVersion,
  backupOpenMemory,
  inspectOpenMemory,
  openOpenMemory,
  planUpgrade,
  restoreLossesOpenMemory,
  restoreOpenMemory,
  revertOpenMemoryVersion,
  verifyOpenMemoryUpgrade,
} from '../activities/openmemory';
import { Engine, VERSIONS } from '../activities/openmemory/migrations';
import {
  HAND_MADE_PARTIAL_SQLITE,
  PgNames,
  V11_COUNTS,
  createPostgresV11,
  createSqliteV11,
  createSqliteVecFile,
  execPostgres,
  execSqlite,
  handMadePartialPostgres,
  pgRows,
  pgSchemaState,
  seedPostgresScript,
  sha256File,
  sqliteRows,
  withPg,
} from './support/openmemory-fixtures';
import { TestPostgres, startTestPostgres, uniqueName } from './support/postgres';

type Role = 'memories' | 'vectors' | 'waypoints' | 'embedLogs';

/** What a scenario needs from an engine. */
interface Harness {
  engine: Engine;
  /** A new v1.1 database with data. */
  fresh(): Promise<OpenMemoryTarget>;
  backupLocation(): { backupFile: string } | { backupSchema: string };
  /** Runs statements one by one, each committed on its own; throws on the first failure. */
  exec(target: OpenMemoryTarget, statements: string[]): Promise<void>;
  handMadePartial(target: OpenMemoryTarget): string[];
  /** An object of the user's that makes v1.2's SQL fail midway. */
  blocker(target: OpenMemoryTarget): string[];
  /** The whole database, exactly: file bytes, or every definition and row. */
  state(target: OpenMemoryTarget): Promise<unknown>;
  rows(target: OpenMemoryTarget, role: Role): Promise<Record<string, unknown>[]>;
  tableName(role: Role | 'users' | 'stats'): string;
}

const V12 = VERSIONS.find((v) => v.id === '1.2.0')!;
const TARGET = '1.2.0';
const BASELINE_TABLES = { memories: V11_COUNTS.memories, vectors: V11_COUNTS.vectors, waypoints: V11_COUNTS.waypoints };

let dir: string;
let pg: TestPostgres;

const sqlite: Harness = {
  engine: 'sqlite',
  async fresh() {
    const path = join(dir, `${uniqueName('om')}.sqlite`);
    createSqliteV11(path);
    return { engine: 'sqlite', path };
  },
  backupLocation: () => ({ backupFile: join(dir, `${uniqueName('backup')}.sqlite`) }),
  async exec(target, statements) {
    execSqlite(sqlitePath(target), statements);
  },
  handMadePartial: () => HAND_MADE_PARTIAL_SQLITE,
  blocker: () => ['CREATE VIEW recent_waypoints AS SELECT * FROM waypoints'],
  async state(target) {
    const path = sqlitePath(target);
    return { sha256: sha256File(path), sidecars: ['-wal', '-shm', '-journal'].filter((s) => existsSync(path + s)) };
  },
  async rows(target, role) {
    return sqliteRows(sqlitePath(target), role);
  },
  tableName: (role) => (role === 'embedLogs' ? 'embed_logs' : role),
};

const PG_MEMORIES = 'om_memories';

const postgres: Harness = {
  engine: 'postgres',
  async fresh() {
    const schema = uniqueName('om');
    await createPostgresV11(pg.url, { schema, memories: PG_MEMORIES });
    // The plan names OM_PG_SCHEMA and OM_PG_TABLE; OpenMemory's default table name is not used, on purpose.
    return { engine: 'postgres', url: pg.url, schema, table: PG_MEMORIES };
  },
  backupLocation: () => ({ backupSchema: uniqueName('om_backup') }),
  async exec(target, statements) {
    const failure = await execPostgres(pg.url, statements);
    if (failure) throw new Error(`${failure.failed}: ${failure.error}`);
  },
  handMadePartial: (target) => handMadePartialPostgres(pgNames(target)),
  blocker: (target) => {
    const s = `"${pgNames(target).schema}"`;
    return [`CREATE TABLE ${s}.waypoint_notes (src_id TEXT REFERENCES ${s}.openmemory_waypoints(src_id), note TEXT)`];
  },
  state: (target) => pgSchemaState(pg.url, pgNames(target).schema),
  rows: (target, role) => pgRows(pg.url, pgNames(target).schema, postgres.tableName(role)),
  tableName: (role) => (role === 'memories' ? PG_MEMORIES : role === 'embedLogs' ? 'openmemory_embed_logs' : `openmemory_${role}`),
};

function sqlitePath(target: OpenMemoryTarget): string {
  if (target.engine !== 'sqlite') throw new Error('not sqlite');
  return target.path;
}

function pgNames(target: OpenMemoryTarget): PgNames {
  if (target.engine !== 'postgres') throw new Error('not postgres');
  return { schema: target.schema!, memories: target.table! };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'memshift-openmemory-'));
  pg = await startTestPostgres();
});

afterAll(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Asserts a non-retryable ApplicationFailure of `type` whose message matches. */
async function expectRefusal(promise: Promise<unknown>, type: string, message: RegExp): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${type}, but it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  const failure = err as ApplicationFailure;
  expect({ type: failure.type, nonRetryable: failure.nonRetryable }).toEqual({ type, nonRetryable: true });
  expect(failure.message).toMatch(message);
  return failure;
}

/** The memories, vectors and waypoints counts of a fresh v1.1 database, by table name. */
function v11RowCounts(h: Harness): Record<string, number> {
  return Object.fromEntries(Object.entries(BASELINE_TABLES).map(([role, n]) => [h.tableName(role as Role), n]));
}

function withoutUserId(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map(({ user_id: _, ...rest }) => rest);
}

/** The version's statements for this database's table names, in order. */
async function v12Statements(target: OpenMemoryTarget): Promise<string[]> {
  const db = await openOpenMemory(target);
  try {
    return V12.changes.flatMap((c) => c.sql[db.engine](db.tables));
  } finally {
    await db.close();
  }
}

/** The workflow's happy path: plan, backup, apply each step, verify. */
async function upgrade(h: Harness, target: OpenMemoryTarget) {
  const plan = await planUpgrade({ target, targetVersion: TARGET });
  const backup = await backupOpenMemory({ target, ...h.backupLocation() });
  const applied = [];
  for (const step of plan.steps) applied.push(await applyOpenMemoryVersion({ target, version: step.version, changes: step.changes }));
  const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET });
  return { plan, backup, applied, report };
}

describe.each([sqlite, postgres])('OpenMemory activities on $engine', (h) => {
  it('upgrades a v1.1 database to 1.2.0 keeping every row, with existing rows for the system user', async () => {
    const target = await h.fresh();
    const before = { memories: await h.rows(target, 'memories'), vectors: await h.rows(target, 'vectors'), waypoints: await h.rows(target, 'waypoints') };

    const { plan, applied, report } = await upgrade(h, target);

    expect(plan.inspection.currentVersion).toBe('1.1');
    expect(plan.steps.map((s) => [s.version, s.status, s.changes])).toEqual([['1.2.0', 'not-started', V12.changes.map((c) => c.id)]]);
    expect(applied).toEqual([
      {
        version: '1.2.0',
        applied: V12.changes.map((c) => c.id),
        alreadyRecorded: false,
        statements: plan.steps[0].sql.length,
        rowCounts: { ...v11RowCounts(h), [h.tableName('embedLogs')]: V11_COUNTS.embedLogs },
      },
    ]);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);

    for (const role of ['memories', 'vectors', 'waypoints'] as const) {
      const after = await h.rows(target, role);
      expect(withoutUserId(after), role).toEqual(before[role]);
      expect(after.every((r) => r.user_id === null), `${role} user_id`).toBe(true);
    }
    const inspection = await inspectOpenMemory({ target, targetVersion: TARGET });
    expect(inspection.currentVersion).toBe('1.2.0');
    expect(inspection.recordedVersions.map((r) => r.version)).toEqual(['1.2.0']);
    expect(inspection.recordedVersions[0].appliedAt).toBeGreaterThan(Date.now() - 60_000);
    expect(inspection.rowCounts).toMatchObject({ ...Object.fromEntries(Object.entries(BASELINE_TABLES).map(([r, n]) => [h.tableName(r as Role), n])) });
    expect(inspection.rowCounts[h.tableName('users')]).toBe(0);
    expect(inspection.rowCounts[h.tableName('stats')]).toBe(0);
  });

  it('is a no-op when run again on the upgraded database', async () => {
    const target = await h.fresh();
    await upgrade(h, target);
    const upgraded = await h.state(target);

    const again = await planUpgrade({ target, targetVersion: TARGET });
    expect(again.upToDate).toBe(true);
    expect(again.steps).toEqual([]);
    expect(again.inspection.versions[0].status).toBe('recorded');
    expect(await applyOpenMemoryVersion({ target, version: TARGET, changes: [] })).toMatchObject({ alreadyRecorded: true, applied: [] });
    expect(await h.state(target)).toEqual(upgraded);
  });

  it('dry run shows the exact SQL per version and the current state, and changes nothing', async () => {
    const target = await h.fresh();
    const original = await h.state(target);

    const plan = await planUpgrade({ target, targetVersion: TARGET });

    expect(plan.steps).toHaveLength(1);
    const sql = plan.steps[0].sql;
    expect(sql.slice(0, -2)).toEqual(await v12Statements(target));
    expect(sql.at(-1)).toMatch(/^INSERT INTO .*"schema_version" \(version, applied_at\) VALUES \('1\.2\.0', /);
    expect(plan.inspection.versions[0].changes.every((c) => c.status === 'missing')).toBe(true);
    expect(plan.inspection.rowCounts[h.tableName('waypoints')]).toBe(V11_COUNTS.waypoints);
    expect(await h.state(target)).toEqual(original);
  });

  it('reports a hand-made partial state change by change, then finishes it', async () => {
    const target = await h.fresh();
    await h.exec(target, h.handMadePartial(target));
    const waypoints = await h.rows(target, 'waypoints');

    const plan = await planUpgrade({ target, targetVersion: TARGET });

    const state = plan.inspection.versions[0];
    expect(state.status).toBe('partial');
    const present = ['memories.user_id', 'memories.user_id.index', 'vectors.user_id', 'users'];
    expect(state.changes.filter((c) => c.status === 'present').map((c) => c.id)).toEqual(present);
    const vectorsIndex = state.changes.find((c) => c.id === 'vectors.user_id.index')!;
    expect(vectorsIndex.missing).toEqual([expect.stringMatching(/^index \w+ on \w+\(user_id\): missing$/)]);
    expect(plan.steps[0].changes).toEqual(V12.changes.map((c) => c.id).filter((id) => !present.includes(id)));
    // Nothing already there is made again.
    expect(plan.steps[0].sql.filter((s) => /(memories|vectors)" ADD COLUMN|^CREATE TABLE \S*users/.test(s))).toEqual([]);

    await backupOpenMemory({ target, ...h.backupLocation() });
    await applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes });
    const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(withoutUserId(await h.rows(target, 'waypoints'))).toEqual(waypoints);
  });

  it('finishes correctly after a non-transactional run crashed between any two statements', async () => {
    let statements: string[] = [];
    const outcomes: string[] = [];
    for (let done = 0; done === 0 || done <= statements.length; done++) {
      const target = await h.fresh();
      statements = await v12Statements(target);
      await h.exec(target, statements.slice(0, done));
      const plan = await planUpgrade({ target, targetVersion: TARGET }).catch((e: ApplicationFailure) => e);
      if (plan instanceof ApplicationFailure) {
        outcomes.push(`${done}: refused ${plan.type}`);
        // Only the window where SQLite's waypoints is dropped and the rebuilt table not yet renamed is refused.
        expect(plan.message).toMatch(/waypoints: missing.*waypoints_new exists: an earlier migration stopped after dropping/);
        continue;
      }
      const expectedStatus = done === 0 ? 'not-started' : done === statements.length ? 'applied-unrecorded' : 'partial';
      expect(plan.steps[0].status, `after ${done} statements`).toBe(expectedStatus);
      await applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes });
      const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET });
      expect(report.checks.filter((c) => !c.ok), `after ${done} statements`).toEqual([]);
      expect((await h.rows(target, 'waypoints')).length).toBe(V11_COUNTS.waypoints);
      outcomes.push(`${done}: ${expectedStatus} → finished`);
    }
    const refused = outcomes.filter((o) => o.includes('refused'));
    expect(refused).toEqual(h.engine === 'sqlite' ? [`${statements.indexOf('DROP TABLE "waypoints"') + 1}: refused NotOpenMemory`] : []);
  });

  it('rolls back the whole version when its SQL fails midway, leaving the database unchanged', async () => {
    const target = await h.fresh();
    await h.exec(target, h.blocker(target));
    const original = await h.state(target);
    const plan = await planUpgrade({ target, targetVersion: TARGET });

    const failure = await expectRefusal(
      applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes }),
      'MigrationFailed',
      /^1\.2\.0: statement \d+ of \d+ failed: .*\n {2}(DROP|ALTER TABLE).*\nThe transaction was rolled back/,
    );
    // It failed after earlier statements had run: those were rolled back too.
    expect(Number(/statement (\d+)/.exec(failure.message)![1])).toBeGreaterThan(5);
    expect(await h.state(target)).toEqual(original);
  });

  it('restores the original exactly on rollback, and again when restore is repeated', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    const { backup, report } = await upgrade(h, target);
    expect(report.ok).toBe(true);
    expect(await h.state(target)).not.toEqual(original);

    const restored = await restoreOpenMemory({ target, backup });
    expect(await h.state(target)).toEqual(original);
    expect(restored.tables.filter((t) => t.action === 'restored').map((t) => [t.name, t.rows])).toEqual(
      expect.arrayContaining(Object.entries(BASELINE_TABLES).map(([role, rows]) => [h.tableName(role as Role), rows])),
    );

    await restoreOpenMemory({ target, backup });
    expect(await h.state(target)).toEqual(original);
    expect((await inspectOpenMemory({ target })).currentVersion).toBe('1.1');
  });

  it('verification after commit checks the schema, not rows: live writes since do not fail it, a missing index does', async () => {
    const target = await h.fresh();
    await upgrade(h, target);
    const waypoints = h.engine === 'sqlite' ? '"waypoints"' : `"${pgNames(target).schema}"."openmemory_waypoints"`;
    await h.exec(target, [`DELETE FROM ${waypoints} WHERE weight = (SELECT max(weight) FROM ${waypoints})`]);
    expect(await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET })).toMatchObject({ ok: true });

    const index = h.engine === 'sqlite' ? '"idx_waypoints_user"' : `"${pgNames(target).schema}"."openmemory_waypoints_user_idx"`;
    await h.exec(target, [`DROP INDEX ${index}`]);
    const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET });
    expect(report.ok).toBe(false);
    expect(report.checks.filter((c) => !c.ok)).toEqual([
      { name: '1.2.0 waypoints.user_id.index', ok: false, detail: expect.stringMatching(/^index \w+ on openmemory_waypoints\(user_id\): missing$|^index idx_waypoints_user on waypoints\(user_id\): missing$/) },
    ]);
  });

  it('reverts 1.2.0 keeping every row, rows written after the upgrade included, and reports what went with the columns', async () => {
    const target = await h.fresh();
    const original = await h.rows(target, 'memories');
    const { applied } = await upgrade(h, target);
    const t = (role: Role | 'users') => (h.engine === 'sqlite' ? `"${h.tableName(role)}"` : `"${pgNames(target).schema}"."${h.tableName(role)}"`);
    // OpenMemory v1.2 at work: a memory of alice's, a waypoint of hers, her users row; and a v1.1-style write.
    await h.exec(target, [
      `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at, user_id) VALUES ('00000000-0000-4000-8000-0000000000a1', 'new for alice', 'semantic', 1, 'alice')`,
      `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at) VALUES ('00000000-0000-4000-8000-0000000000a2', 'new, no user', 'semantic', 2)`,
      `UPDATE ${t('memories')} SET content = 'changed' WHERE id = '00000000-0000-4000-8000-000000000003'`,
      `INSERT INTO ${t('waypoints')} (src_id, dst_id, user_id, weight) VALUES ('00000000-0000-4000-8000-0000000000a1', 'x', 'alice', 1)`,
      `INSERT INTO ${t('users')} (user_id, summary) VALUES ('alice', 'summary')`,
    ]);
    const memories = await h.rows(target, 'memories');
    const waypoints = await h.rows(target, 'waypoints');

    const result = await revertOpenMemoryVersion({ target, version: TARGET, changes: applied[0].applied });

    expect(result).toMatchObject({
      version: TARGET,
      alreadyReverted: false,
      droppedValues: { [`${h.tableName('memories')}.user_id`]: 1, [`${h.tableName('waypoints')}.user_id`]: 1 },
      keptTables: { [h.tableName('users')]: 1 },
    });
    expect(result.reverted).toEqual([...applied[0].applied].reverse().filter((id) => id !== 'users'));
    expect(await h.rows(target, 'memories')).toEqual(withoutUserId(memories));
    expect(await h.rows(target, 'waypoints')).toEqual(withoutUserId(waypoints));
    expect((await h.rows(target, 'memories')).length).toBe(original.length + 2);
    const inspection = await inspectOpenMemory({ target });
    expect(inspection.currentVersion).toBe('1.1');
    expect(inspection.versions[0].changes.filter((c) => c.status === 'present').map((c) => c.id)).toEqual(['users']);
    // Retried after it committed: nothing more to do.
    expect(await revertOpenMemoryVersion({ target, version: TARGET, changes: applied[0].applied })).toMatchObject({ alreadyReverted: true, reverted: [] });
  });

  it('reverting an untouched upgrade gives back the v1.1 schema exactly', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    const { applied } = await upgrade(h, target);
    await revertOpenMemoryVersion({ target, version: TARGET, changes: applied[0].applied });
    if (h.engine === 'postgres') expect(await h.state(target)).toEqual(original);
    const inspection = await inspectOpenMemory({ target });
    expect(inspection.versions[0].status).toBe('not-started');
    expect(inspection.recordedVersions).toEqual([]);
  });

  it('refuses to revert when waypoints written since share a src_id, naming it, and changes nothing', async () => {
    const target = await h.fresh();
    const { applied } = await upgrade(h, target);
    const waypoints = h.engine === 'sqlite' ? '"waypoints"' : `"${pgNames(target).schema}"."openmemory_waypoints"`;
    const src = '00000000-0000-4000-8000-000000000001';
    await h.exec(target, [`INSERT INTO ${waypoints} (src_id, dst_id, user_id, weight) VALUES ('${src}', 'x', 'bob', 1)`]);
    const before = await h.state(target);

    await expectRefusal(
      revertOpenMemoryVersion({ target, version: TARGET, changes: applied[0].applied }),
      'RollbackWouldLoseRows',
      new RegExp(`would put back ${h.tableName('waypoints')}'s key \\(src_id\\), but 1 value\\(s\\) of it are shared .* src_id \\(${src}\\): 2 rows\\. Nothing was changed`),
    );
    expect(await h.state(target)).toEqual(before);
  });

  it('says what restoring the backup would discard, per table', async () => {
    const target = await h.fresh();
    const { backup } = await upgrade(h, target);
    const t = (role: Role | 'users') => (h.engine === 'sqlite' ? `"${h.tableName(role)}"` : `"${pgNames(target).schema}"."${h.tableName(role)}"`);
    await h.exec(target, [
      `INSERT INTO ${t('memories')} (id, content, primary_sector, created_at) VALUES ('00000000-0000-4000-8000-0000000000b1', 'new', 'semantic', 1)`,
      `UPDATE ${t('memories')} SET content = 'changed' WHERE id = '00000000-0000-4000-8000-000000000004'`,
      `DELETE FROM ${t('vectors')} WHERE id = '00000000-0000-4000-8000-000000000005'`,
      `INSERT INTO ${t('users')} (user_id) VALUES ('alice')`,
    ]);
    const losses = await restoreLossesOpenMemory({ target, backup });
    const of = (role: Role | 'users') => losses.find((l) => l.table === h.tableName(role));
    expect(of('memories')).toEqual({ table: h.tableName('memories'), rowsNow: V11_COUNTS.memories + 1, rowsInBackup: V11_COUNTS.memories, discarded: 2 });
    expect(of('vectors')).toEqual({ table: h.tableName('vectors'), rowsNow: V11_COUNTS.vectors - 2, rowsInBackup: V11_COUNTS.vectors, discarded: 0 });
    expect(of('users')).toEqual({ table: h.tableName('users'), rowsNow: 1, rowsInBackup: 0, discarded: 1 });
  });

  it('refuses an unknown target version, changing nothing', async () => {
    const target = await h.fresh();
    const original = await h.state(target);
    await expectRefusal(planUpgrade({ target, targetVersion: '9.9.9' }), 'UnknownVersion', /unknown target version "9\.9\.9"; known versions: 1\.2\.0/);
    await expectRefusal(applyOpenMemoryVersion({ target, version: '9.9.9', changes: [] }), 'UnknownVersion', /"9\.9\.9"/);
    expect(await h.state(target)).toEqual(original);
  });

  it('refuses to apply when the database no longer matches the approved plan', async () => {
    const target = await h.fresh();
    const plan = await planUpgrade({ target, targetVersion: TARGET });
    await h.exec(target, h.handMadePartial(target));
    const changed = await h.state(target);

    await expectRefusal(
      applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes }),
      'PlanChanged',
      /changed since the plan was made: .* the database now needs \[vectors\.user_id\.index, waypoints\.user_id,/,
    );
    expect(await h.state(target)).toEqual(changed);
  });

  it('refuses a partial state it cannot finish safely: a same-named object that is something else', async () => {
    const target = await h.fresh();
    const memories = h.engine === 'sqlite' ? '"memories"' : `"${pgNames(target).schema}"."${PG_MEMORIES}"`;
    const indexName = h.engine === 'sqlite' ? 'idx_memories_user' : 'openmemory_memories_user_idx';
    await h.exec(target, [`CREATE INDEX ${indexName} ON ${memories}(content)`]);

    await expectRefusal(
      planUpgrade({ target, targetVersion: TARGET }),
      'InconsistentSchema',
      new RegExp(`cannot apply 1\\.2\\.0 safely: index ${indexName} on ${h.tableName('memories')}\\(user_id\\): an index of that name exists on ${h.tableName('memories')}\\(content\\)`),
    );
  });
});

describe('SQLite only', () => {
  it('refuses a file that is not an SQLite database, a missing file, and an SQLite database that is not OpenMemory', async () => {
    const junk = join(dir, 'notes.txt');
    writeFileSync(junk, 'these are my notes, not a database; '.repeat(10));
    await expectRefusal(planUpgrade({ target: { engine: 'sqlite', path: junk }, targetVersion: TARGET }), 'NotOpenMemory', /notes\.txt is not an SQLite database/);

    const missing = join(dir, 'missing.sqlite');
    await expectRefusal(inspectOpenMemory({ target: { engine: 'sqlite', path: missing } }), 'DatabaseNotFound', /no SQLite database at .*missing\.sqlite/);
    expect(existsSync(missing)).toBe(false);

    const other = join(dir, 'other.sqlite');
    const db = new Database(other);
    db.exec('CREATE TABLE memories (id TEXT PRIMARY KEY, body TEXT); CREATE TABLE todo (id INTEGER)');
    db.close();
    const before = sha256File(other);
    await expectRefusal(
      planUpgrade({ target: { engine: 'sqlite', path: other }, targetVersion: TARGET }),
      'NotOpenMemory',
      /is not an OpenMemory \(v1\.1 or later\) database: table memories exists but lacks column\(s\) content, primary_sector, created_at; table vectors: missing; table waypoints: missing; table embed_logs: missing\. Tables found: memories, todo/,
    );
    expect(sha256File(other)).toBe(before);
  });

  it('refuses a backup file that exists, or that is the database or one of its SQLite files', async () => {
    const target = await sqlite.fresh();
    const original = await sqlite.state(target);
    const file = join(dir, 'taken.sqlite');
    writeFileSync(file, 'something else');
    await expectRefusal(backupOpenMemory({ target, backupFile: file }), 'BackupLocationExists', /taken\.sqlite already exists and is not this run's/);
    const path = sqlitePath(target);
    for (const protectedFile of [path, `${path}-wal`, `${path}-shm`]) {
      await expectRefusal(backupOpenMemory({ target, backupFile: protectedFile }), 'PathIsProtected', /is the OpenMemory database .* Nothing was written/);
    }
    expect(await sqlite.state(target)).toEqual(original);
  });

  it('a write lock held by a running OpenMemory is a retryable DatabaseLocked, and nothing is changed', async () => {
    const target = await sqlite.fresh();
    const original = await sqlite.state(target);
    const plan = await planUpgrade({ target, targetVersion: TARGET });
    const openMemory = new Database(sqlitePath(target), { fileMustExist: true });
    try {
      openMemory.exec('BEGIN IMMEDIATE');
      const err = await applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect({ type: (err as ApplicationFailure).type, nonRetryable: (err as ApplicationFailure).nonRetryable }).toEqual({ type: 'DatabaseLocked', nonRetryable: false });
    } finally {
      openMemory.exec('ROLLBACK');
      openMemory.close();
    }
    expect(await sqlite.state(target)).toEqual(original);
  });

  it('refuses an mcp-memory-service SQLite-vec file at once as not OpenMemory (its vec0 table needs a module not loaded here)', async () => {
    const file = join(dir, `${uniqueName('sqlite-vec')}.db`);
    createSqliteVecFile(file);
    const before = sha256File(file);
    await expectRefusal(
      planUpgrade({ target: { engine: 'sqlite', path: file }, targetVersion: TARGET }),
      'NotOpenMemory',
      /is not an OpenMemory \(v1\.1 or later\) database: table memories exists but lacks column\(s\) primary_sector; table vectors: missing.*Tables found: memories, memory_embeddings_/,
    );
    expect(sha256File(file)).toBe(before);
  });
});

describe('PostgreSQL only', () => {
  it('refuses a schema or table that does not exist, naming the setting, and a schema that is not OpenMemory', async () => {
    const target = (await postgres.fresh()) as Extract<OpenMemoryTarget, { engine: 'postgres' }>;
    const original = await postgres.state(target);

    await expectRefusal(
      planUpgrade({ target: { ...target, schema: 'no_such_schema' }, targetVersion: TARGET }),
      'SchemaNotFound',
      /schema "no_such_schema" does not exist in postgres:\/\/.* \(OM_PG_SCHEMA\); schemas there: .*public/,
    );
    await expectRefusal(
      planUpgrade({ target: { ...target, table: 'no_such_table' }, targetVersion: TARGET }),
      'TableNotFound',
      /the plan's table \(OM_PG_TABLE\) ".*"\."no_such_table" does not exist .*; tables there: om_memories, openmemory_embed_logs/,
    );
    await expectRefusal(
      planUpgrade({ target: { ...target, table: undefined }, targetVersion: TARGET }),
      'NotOpenMemory',
      /table openmemory_memories: missing\. Tables found: /,
    );
    expect(await postgres.state(target)).toEqual(original);

    const unrelated = uniqueName('shop');
    await withPg(pg.url, (c) => c.query(`CREATE SCHEMA "${unrelated}"; CREATE TABLE "${unrelated}".orders (id INT)`));
    await expectRefusal(
      inspectOpenMemory({ target: { engine: 'postgres', url: pg.url, schema: unrelated } }),
      'NotOpenMemory',
      /table openmemory_memories: missing; table openmemory_vectors: missing; .* Tables found: orders/,
    );
  });

  it('refuses a URL that carries a password', async () => {
    const url = new URL(pg.url);
    url.password = 'secret';
    await expectRefusal(
      inspectOpenMemory({ target: { engine: 'postgres', url: url.toString() } }),
      'InvalidTarget',
      /carries a password; set PGPASSWORD/,
    );
  });

  it("finishes what the seed's own PostgreSQL script leaves when its ADD PRIMARY KEY fails on NULL user_id", async () => {
    const target = await postgres.fresh();
    const failure = await execPostgres(pg.url, seedPostgresScript(pgNames(target)));
    expect(failure).toMatchObject({ failed: expect.stringMatching(/ADD PRIMARY KEY \(src_id, user_id\)$/), error: expect.stringMatching(/contains null values/) });

    const plan = await planUpgrade({ target, targetVersion: TARGET });
    const waypointsKey = plan.inspection.versions[0].changes.find((c) => c.id === 'waypoints.key')!;
    expect(waypointsKey.missing).toEqual(['openmemory_waypoints keyed by (src_id, user_id) — keyed by (nothing): missing']);
    expect(plan.steps[0].changes).toEqual(['waypoints.key', 'waypoints.user_id.index', 'users', 'stats', 'stats.ts.index', 'stats.type.index']);

    await applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes });
    const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
  });

  it('refuses a backup schema that already exists, even an earlier memshift backup', async () => {
    const target = await postgres.fresh();
    await expectRefusal(backupOpenMemory({ target, backupSchema: 'public' }), 'BackupLocationExists', /schema "public" already exists and is not a memshift backup/);
    const { backupSchema } = postgres.backupLocation() as { backupSchema: string };
    await backupOpenMemory({ target, backupSchema });
    await expectRefusal(backupOpenMemory({ target, backupSchema }), 'BackupLocationExists', /holds an earlier memshift backup, not this run's/);
  });
});
