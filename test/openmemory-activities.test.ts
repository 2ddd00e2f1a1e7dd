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
  restoreOpenMemory,
  verifyOpenMemoryUpgrade,
} from '../activities/openmemory';
import { Engine, VERSIONS } from '../activities/openmemory/migrations';
import {
  HAND_MADE_PARTIAL_SQLITE,
  PgNames,
  V11_COUNTS,
  createPostgresV11,
  createSqliteV11,
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

type Role = 'memories' | 'vectors' | 'waypoints';

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
  tableName: (role) => role,
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
  tableName: (role) => (role === 'memories' ? PG_MEMORIES : `openmemory_${role}`),
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
  const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET, baselineRowCounts: plan.inspection.rowCounts, backup });
  return { plan, backup, applied, report };
}

describe.each([sqlite, postgres])('OpenMemory activities on $engine', (h) => {
  it('upgrades a v1.1 database to 1.2.0 keeping every row, with existing rows for the system user', async () => {
    const target = await h.fresh();
    const before = { memories: await h.rows(target, 'memories'), vectors: await h.rows(target, 'vectors'), waypoints: await h.rows(target, 'waypoints') };

    const { plan, applied, report } = await upgrade(h, target);

    expect(plan.inspection.currentVersion).toBe('1.1');
    expect(plan.steps.map((s) => [s.version, s.status, s.changes])).toEqual([['1.2.0', 'not-started', V12.changes.map((c) => c.id)]]);
    expect(applied).toEqual([{ version: '1.2.0', applied: V12.changes.map((c) => c.id), alreadyRecorded: false, statements: plan.steps[0].sql.length }]);
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

    const backup = await backupOpenMemory({ target, ...h.backupLocation() });
    await applyOpenMemoryVersion({ target, version: TARGET, changes: plan.steps[0].changes });
    const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET, baselineRowCounts: plan.inspection.rowCounts, backup });
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
      const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET, baselineRowCounts: plan.inspection.rowCounts });
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

  it('verification fails when a row went missing', async () => {
    const target = await h.fresh();
    const { plan, backup } = await upgrade(h, target);
    const waypoints = h.engine === 'sqlite' ? '"waypoints"' : `"${pgNames(target).schema}"."openmemory_waypoints"`;
    await h.exec(target, [`DELETE FROM ${waypoints} WHERE weight = (SELECT max(weight) FROM ${waypoints})`]);

    const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET, baselineRowCounts: plan.inspection.rowCounts, backup });

    expect(report.ok).toBe(false);
    const name = h.tableName('waypoints');
    expect(report.checks.filter((c) => !c.ok)).toEqual([
      { name: `rows in ${name}`, ok: false, detail: `${V11_COUNTS.waypoints} before, ${V11_COUNTS.waypoints - 1} now` },
      { name: `rows of ${name} preserved`, ok: false, detail: `${V11_COUNTS.waypoints} rows in the backup, 1 missing or changed` },
    ]);
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

  it('refuses to overwrite a backup file that is not a copy of this database', async () => {
    const target = await sqlite.fresh();
    const file = join(dir, 'taken.sqlite');
    writeFileSync(file, 'something else');
    await expectRefusal(backupOpenMemory({ target, backupFile: file }), 'BackupFailed', /taken\.sqlite already exists and is not a copy/);
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
    const report = await verifyOpenMemoryUpgrade({ target, targetVersion: TARGET, baselineRowCounts: plan.inspection.rowCounts });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
  });

  it('refuses a backup schema that already exists and is not a memshift backup', async () => {
    const target = await postgres.fresh();
    await expectRefusal(backupOpenMemory({ target, backupSchema: 'public' }), 'BackupFailed', /schema "public" already exists and is not a memshift backup/);
  });
});
