/**
 * "An OpenMemory database", whatever engine holds it: the small contract the
 * SQLite and PostgreSQL adapters fulfil, and the version logic written once
 * on top of it — inspect, plan, apply one version, verify.
 *
 * Everything here returns schema facts, counts and SQL text; row contents
 * never leave the database.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { CheckResult } from '../../workflows/messages';
import {
  BASELINE,
  Change,
  TABLE_ROLES,
  Engine,
  Expectation,
  TableName,
  TableRole,
  Tables,
  VERSIONS,
  Version,
  expectationsFor,
  findVersion,
  knownVersionIds,
  recordVersionSql,
  unrecordVersionSql,
  versionsUpTo,
} from './migrations';

/** Where the database is, as a plan names it: paths and URLs, never credentials. */
export type OpenMemoryTarget =
  | { engine: 'sqlite'; path: string }
  | {
      engine: 'postgres';
      /** postgres://host:port/db, without a password: `pg` reads PGUSER/PGPASSWORD from the worker. */
      url: string;
      /** OM_PG_SCHEMA; default public. */
      schema?: string;
      /** OM_PG_TABLE, the memories table; default openmemory_memories. */
      table?: string;
      /** OM_VECTOR_TABLE; default openmemory_vectors. */
      vectorTable?: string;
    };

export interface IndexShape {
  name: string;
  columns: string[];
}

export interface TableShape {
  columns: string[];
  /** Row-identifying columns (see the `key` expectation); empty when none. */
  key: string[];
  indexes: IndexShape[];
}

/** Every table of the database (SQLite) or schema (PostgreSQL), by bare name. */
export type SchemaSnapshot = Map<string, TableShape>;

export interface RecordedVersion {
  version: string;
  /** Epoch milliseconds, as OpenMemory writes it. */
  appliedAt: number | null;
}

export interface SqliteBackup {
  engine: 'sqlite';
  file: string;
  sha256: string;
  bytes: number;
  rowCounts: Record<string, number>;
}

export interface PostgresBackup {
  engine: 'postgres';
  schema: string;
  /** Each table the upgrade may touch; `existed: false` ones are dropped on restore. */
  tables: { name: string; existed: boolean; rows: number }[];
}

export type OpenMemoryBackup = SqliteBackup | PostgresBackup;

/** What putting a backup back would cost one table. */
export interface RestoreLoss {
  table: string;
  rowsNow: number;
  /** 0 for a table the backup does not have (restoring drops it). */
  rowsInBackup: number;
  /** Rows now that the backup lacks as they are (written or changed since): restoring discards them. */
  discarded: number;
}

export interface RestoreResult {
  engine: Engine;
  tables: { name: string; rows: number; action: 'restored' | 'dropped' }[];
  /** SQLite: the restored file's hash, equal to the backup's. */
  sha256?: string;
}

export interface OpenMemoryDatabase {
  readonly engine: Engine;
  readonly tables: Tables;
  /** For messages: a file path, or URL and schema. */
  readonly location: string;
  snapshot(): Promise<SchemaSnapshot>;
  rowCounts(): Promise<Record<string, number>>;
  /** schema_version's rows, oldest first; none when the table does not exist. */
  recordedVersions(): Promise<RecordedVersion[]>;
  countRows(table: TableName): Promise<number>;
  countNotNull(table: TableName, column: string): Promise<number>;
  /** Values of `columns` that several rows of `table` share: how many, and the first `limit` with their row counts. */
  sharedKeys(table: TableName, columns: string[], limit: number): Promise<SharedKeys>;
  execute(sql: string): Promise<void>;
  /** One write transaction: committed when `work` resolves, rolled back when it throws. */
  transaction<T>(work: () => Promise<T>): Promise<T>;
  /**
   * Inside a transaction: every other writer of these tables waits until it
   * ends. PostgreSQL locks those that exist (ACCESS EXCLUSIVE); on SQLite the
   * transaction's BEGIN IMMEDIATE already holds the whole file's write lock.
   */
  lockTables(tables: TableName[]): Promise<void>;
  /**
   * A verified copy at `location` (a file for SQLite, a schema for PostgreSQL)
   * of the tables named. `owner` names the run making it: a location that
   * already exists is accepted only as that same run's backup.
   */
  backup(location: string, tables: TableRole[], owner: string | undefined): Promise<OpenMemoryBackup>;
  restoreLosses(backup: OpenMemoryBackup): Promise<RestoreLoss[]>;
  /** Puts the backup back and checks it is exactly what was backed up. */
  restore(backup: OpenMemoryBackup): Promise<RestoreResult>;
  close(): Promise<void>;
}

export interface SharedKeys {
  count: number;
  /** Key values are ids (e.g. waypoints' src_id), never contents. */
  first: { key: (string | null)[]; rows: number }[];
}

export type FailureType =
  | 'InvalidTarget'
  | 'DatabaseNotFound'
  | 'SchemaNotFound'
  | 'TableNotFound'
  | 'NotOpenMemory'
  | 'UnknownVersion'
  | 'InconsistentSchema'
  | 'PlanChanged'
  | 'MigrationFailed'
  | 'BackupFailed'
  | 'BackupLocationExists'
  | 'RestoreFailed'
  | 'RollbackWouldLoseRows'
  | 'DatabaseError';

/** A problem a person must fix: retrying cannot help. */
export function refuse(type: FailureType, message: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

// ---------------------------------------------------------------------------
// Reports

export type ChangeStatus = 'present' | 'missing' | 'conflict';

export interface ChangeState {
  id: string;
  description: string;
  status: ChangeStatus;
  /** One line per expectation that holds, e.g. "column memories.user_id: present". */
  present: string[];
  /** One line per expectation that does not, saying why. */
  missing: string[];
}

export type VersionStatus =
  | 'recorded'
  | 'not-started'
  /** Some changes present, no schema_version row: an earlier script stopped midway. */
  | 'partial'
  /** Every change present, no schema_version row. */
  | 'applied-unrecorded'
  /** schema_version says applied, the schema says otherwise. */
  | 'recorded-incomplete';

export interface VersionState {
  id: string;
  description: string;
  status: VersionStatus;
  appliedAt: number | null;
  changes: ChangeState[];
  /** Scratch tables an interrupted run left behind, with their row counts. */
  leftovers: string[];
}

export interface OpenMemoryInspection {
  engine: Engine;
  location: string;
  /** Latest known version schema_version records, else the baseline ("1.1"). */
  currentVersion: string;
  recordedVersions: RecordedVersion[];
  /** Recorded versions this memshift does not know (a newer OpenMemory). */
  unknownRecordedVersions: string[];
  versions: VersionState[];
  rowCounts: Record<string, number>;
}

export interface UpgradeStep {
  version: string;
  description: string;
  status: VersionStatus;
  /** Ids of the changes this step makes; the approved plan passes them to apply. */
  changes: string[];
  /** Exactly the statements apply runs, in one transaction. */
  sql: string[];
}

export interface UpgradePlan {
  targetVersion: string;
  inspection: OpenMemoryInspection;
  steps: UpgradeStep[];
  upToDate: boolean;
}

export interface AppliedVersion {
  version: string;
  /** Change ids made now; empty when the version was already recorded. */
  applied: string[];
  alreadyRecorded: boolean;
  statements: number;
  /** Rows per table, counted under the write lock before the changes — and, checked before commit, still there after. */
  rowCounts: Record<string, number>;
  /** Only when this was not the activity's first attempt (the worker running an earlier one died, or the database was locked). */
  retry?: ApplyRetry;
}

export interface ApplyRetry {
  /** The attempt that succeeded, from 2. */
  attempt: number;
  /** Where the previous attempt last said it was (its last heartbeat reaching Temporal), e.g. "statement 5 of 15: ALTER TABLE …". */
  previousAttemptAt: string | null;
  /** What this attempt found: `not-started`/`partial` as planned — nothing of the interrupted attempt committed — or `recorded`: it had committed. */
  found: VersionStatus;
}

/** Where a running apply is, for its heartbeat: the next attempt reads it back after a crash. */
export type ApplyProgress = (step: string) => void;

export interface RevertedVersion {
  version: string;
  /** Change ids undone now, newest first; empty when the version was no longer recorded (a retry after it committed). */
  reverted: string[];
  alreadyReverted: boolean;
  statements: number;
  /** Rows per table, counted under the write lock before the reverse — and, checked before commit, still there after. */
  rowCounts: Record<string, number>;
  /** Values the reverse dropped with their columns (e.g. user_id set since the upgrade), as "table.column" → rows. */
  droppedValues: Record<string, number>;
  /** Tables the version created that now hold rows: kept, with their row counts. */
  keptTables: Record<string, number>;
}

export interface VerificationReport {
  ok: boolean;
  checks: CheckResult[];
}

// ---------------------------------------------------------------------------
// Inspection

interface Finding {
  ok: boolean;
  /** Something with the expected name exists but is not what was expected. */
  conflict: boolean;
  text: string;
}

function evaluate(e: Expectation, snapshot: SchemaSnapshot, engine: Engine, tables: Tables): Finding {
  const name = tables[e.table].name;
  const table = snapshot.get(name);
  const found = (text: string): Finding => ({ ok: true, conflict: false, text: `${text}: present` });
  const missing = (text: string): Finding => ({ ok: false, conflict: false, text: `${text}: missing` });
  const conflict = (text: string): Finding => ({ ok: false, conflict: true, text });

  switch (e.kind) {
    case 'table': {
      if (!table) return missing(`table ${name}`);
      const absent = e.columns.filter((c) => !table.columns.includes(c));
      return absent.length === 0
        ? found(`table ${name}`)
        : conflict(`table ${name} exists but lacks column(s) ${absent.join(', ')}`);
    }
    case 'column':
      if (!table) return missing(`column ${name}.${e.column} (no table ${name})`);
      return table.columns.includes(e.column) ? found(`column ${name}.${e.column}`) : missing(`column ${name}.${e.column}`);
    case 'index': {
      const indexName = e.name[engine];
      const label = `index ${indexName} on ${name}(${e.columns.join(', ')})`;
      for (const [tableName, shape] of snapshot) {
        const index = shape.indexes.find((i) => i.name === indexName);
        if (!index) continue;
        const same = tableName === name && sameList(index.columns, e.columns);
        return same ? found(label) : conflict(`${label}: an index of that name exists on ${tableName}(${index.columns.join(', ')})`);
      }
      return missing(label);
    }
    case 'key': {
      const label = `${name} keyed by (${e.columns.join(', ')})`;
      if (!table) return missing(`${label} (no table ${name})`);
      if (sameList(table.key, e.columns)) return found(label);
      return missing(`${label} — keyed by (${table.key.join(', ') || 'nothing'})`);
    }
  }
}

function changeState(change: Change, db: OpenMemoryDatabase, snapshot: SchemaSnapshot): ChangeState {
  const findings = expectationsFor(change, db.engine).map((e) => evaluate(e, snapshot, db.engine, db.tables));
  const status: ChangeStatus = findings.every((f) => f.ok) ? 'present' : findings.some((f) => f.conflict) ? 'conflict' : 'missing';
  return {
    id: change.id,
    description: change.description,
    status,
    present: findings.filter((f) => f.ok).map((f) => f.text),
    missing: findings.filter((f) => !f.ok).map((f) => f.text),
  };
}

function scratchTablesOf(version: Version, engine: Engine): string[] {
  return version.changes.flatMap((c) => c.scratchTables?.[engine] ?? []);
}

function versionState(
  version: Version,
  db: OpenMemoryDatabase,
  snapshot: SchemaSnapshot,
  recorded: RecordedVersion[],
  rowCounts: Record<string, number>,
): VersionState {
  const changes = version.changes.map((c) => changeState(c, db, snapshot));
  const record = recorded.find((r) => r.version === version.id);
  const leftovers = scratchTablesOf(version, db.engine)
    .filter((t) => snapshot.has(t))
    .map((t) => `${t} (${rowCounts[t] ?? 0} rows)`);
  const allPresent = changes.every((c) => c.status === 'present');
  const somePresent = changes.some((c) => c.status === 'present');
  const status: VersionStatus = record
    ? allPresent
      ? 'recorded'
      : 'recorded-incomplete'
    : allPresent
      ? 'applied-unrecorded'
      : somePresent || leftovers.length > 0
        ? 'partial'
        : 'not-started';
  return { id: version.id, description: version.description, status, appliedAt: record?.appliedAt ?? null, changes, leftovers };
}

/** Refuses, saying exactly what is missing, a database that is not OpenMemory v1.1 or later. */
function requireBaseline(db: OpenMemoryDatabase, snapshot: SchemaSnapshot): void {
  const problems = BASELINE.expect
    .map((e) => evaluate(e, snapshot, db.engine, db.tables))
    .filter((f) => !f.ok)
    .map((f) => f.text);
  if (problems.length === 0) return;
  const hints = VERSIONS.flatMap((v) => scratchTablesOf(v, db.engine))
    .filter((scratch) => snapshot.has(scratch))
    .map(
      (scratch) =>
        ` ${scratch} exists: an earlier migration stopped after dropping the table it rebuilds and before renaming ${scratch} to it —` +
        ` rename it back by hand or restore your backup, then start again.`,
    );
  const found = [...snapshot.keys()].join(', ') || 'none';
  refuse(
    'NotOpenMemory',
    `${db.location} is not an OpenMemory (v${BASELINE.id} or later) database: ${problems.join('; ')}. Tables found: ${found}.${hints.join('')}`,
  );
}

function requireVersions(targetVersion: string): Version[] {
  return (
    versionsUpTo(targetVersion) ??
    refuse('UnknownVersion', `unknown target version "${targetVersion}"; known versions: ${knownVersionIds().join(', ')}`)
  );
}

function requireVersion(id: string): Version {
  return findVersion(id) ?? refuse('UnknownVersion', `unknown version "${id}"; known versions: ${knownVersionIds().join(', ')}`);
}

export async function inspect(db: OpenMemoryDatabase, targetVersion?: string): Promise<OpenMemoryInspection> {
  const versions = targetVersion === undefined ? [...VERSIONS] : requireVersions(targetVersion);
  const snapshot = await db.snapshot();
  requireBaseline(db, snapshot);
  const recorded = await db.recordedVersions();
  const rowCounts = await db.rowCounts();
  const known = new Set(knownVersionIds());
  const latestKnown = [...VERSIONS].reverse().find((v) => recorded.some((r) => r.version === v.id));
  return {
    engine: db.engine,
    location: db.location,
    currentVersion: latestKnown?.id ?? BASELINE.id,
    recordedVersions: recorded,
    unknownRecordedVersions: recorded.map((r) => r.version).filter((v) => !known.has(v)),
    versions: versions.map((v) => versionState(v, db, snapshot, recorded, rowCounts)),
    rowCounts,
  };
}

// ---------------------------------------------------------------------------
// Plan, apply

function statementsFor(db: OpenMemoryDatabase, version: Version, changeIds: string[]): string[] {
  const changes = version.changes.filter((c) => changeIds.includes(c.id));
  return [...changes.flatMap((c) => c.sql[db.engine](db.tables)), ...recordVersionSql(db.engine, db.tables, version)];
}

/** Refuses states no plan can safely finish; names what is wrong. */
function requireFinishable(state: VersionState, location: string): void {
  if (state.status === 'recorded-incomplete') {
    refuse(
      'InconsistentSchema',
      `${location}: schema_version records ${state.id} but the schema lacks: ${state.changes.flatMap((c) => c.missing).join('; ')}. ` +
        `Something changed the schema after the upgrade; repair it by hand or restore a backup.`,
    );
  }
  const conflicts = state.changes.filter((c) => c.status === 'conflict');
  if (conflicts.length > 0) {
    const details = conflicts.flatMap((c) => c.missing);
    refuse('InconsistentSchema', `${location}: cannot apply ${state.id} safely: ${details.join('; ')}. Rename or drop these by hand.`);
  }
}

/** The dry run: where the database stands and the exact SQL each pending version would run. Changes nothing. */
export async function plan(db: OpenMemoryDatabase, targetVersion: string): Promise<UpgradePlan> {
  const inspection = await inspect(db, targetVersion);
  if (inspection.unknownRecordedVersions.length > 0) {
    refuse(
      'InconsistentSchema',
      `${db.location} records schema version(s) ${inspection.unknownRecordedVersions.join(', ')} that this memshift does not know ` +
        `(known: ${knownVersionIds().join(', ')}); it was upgraded by a newer OpenMemory.`,
    );
  }
  // Each pending version is assessed against today's schema; apply assesses
  // it again when its turn comes and refuses if its changes differ by then.
  const steps: UpgradeStep[] = [];
  for (const state of inspection.versions) {
    requireFinishable(state, db.location);
    if (state.status === 'recorded') continue;
    const version = requireVersion(state.id);
    const changes = state.changes.filter((c) => c.status !== 'present').map((c) => c.id);
    steps.push({ version: state.id, description: state.description, status: state.status, changes, sql: statementsFor(db, version, changes) });
  }
  return { targetVersion, inspection, steps, upToDate: steps.length === 0 };
}

/**
 * Applies one version in one transaction: the changes still missing, then its
 * schema_version row, then a re-inspection — the transaction commits only a
 * state where every change of the version is present. A version already
 * recorded is left alone, so a retried or re-run apply is a no-op.
 *
 * `expectedChanges` are the change ids of the approved plan: if the database
 * now needs different ones, nothing is done.
 */
export async function applyVersion(
  db: OpenMemoryDatabase,
  version: Version,
  expectedChanges?: string[],
  options: { progress?: ApplyProgress; retryOf?: Omit<ApplyRetry, 'found'> } = {},
): Promise<AppliedVersion> {
  const progress = options.progress ?? (() => undefined);
  const retried = (found: VersionStatus) => (options.retryOf ? { retry: { ...options.retryOf, found } } : {});
  progress(`${version.id}: beginning the transaction`);
  return db.transaction(async () => {
    progress(`${version.id}: locking the tables`);
    await db.lockTables(TABLE_ROLES.map((role) => db.tables[role]));
    progress(`${version.id}: inspecting, in the transaction`);
    const snapshot = await db.snapshot();
    requireBaseline(db, snapshot);
    const recorded = await db.recordedVersions();
    const rowCounts = await countOpenMemoryRows(db, snapshot);
    if (recorded.some((r) => r.version === version.id)) {
      return { version: version.id, applied: [], alreadyRecorded: true, statements: 0, rowCounts, ...retried('recorded') };
    }
    const earlier = VERSIONS.slice(0, VERSIONS.indexOf(version)).filter((v) => !recorded.some((r) => r.version === v.id));
    if (earlier.length > 0) {
      refuse('PlanChanged', `${version.id} cannot be applied before ${earlier.map((v) => v.id).join(', ')}`);
    }
    const state = versionState(version, db, snapshot, recorded, {});
    requireFinishable(state, db.location);
    const pending = state.changes.filter((c) => c.status !== 'present').map((c) => c.id);
    if (expectedChanges && !sameSet(pending, expectedChanges)) {
      refuse(
        'PlanChanged',
        `${db.location} changed since the plan was made: the plan makes [${expectedChanges.join(', ')}] of ${version.id}, ` +
          `the database now needs [${pending.join(', ')}]. Plan again.`,
      );
    }
    const statements = statementsFor(db, version, pending);
    await runStatements(db, version.id, statements, progress);
    progress(`${version.id}: checking, then committing`);
    const after = await db.snapshot();
    const problems = [
      ...versionState(version, db, after, [], {}).changes.flatMap((c) => c.missing),
      ...(await rowsNotKept(db, after, rowCounts)),
      ...(await valuesInAddedColumns(db, version, pending)),
    ];
    if (problems.length > 0) {
      refuse('MigrationFailed', `${version.id}'s SQL ran but ${problems.join('; ')}. Rolled back: ${db.location} is as it was before ${version.id}.`);
    }
    return { version: version.id, applied: pending, alreadyRecorded: false, statements: statements.length, rowCounts, ...retried(state.status) };
  });
}

/**
 * Undoes the changes of `version` this run made (`changeIds`), newest first,
 * in one transaction under the tables' write locks, and removes its
 * schema_version row. Every row stays — rows written after the upgrade
 * included — and that is checked before commit. Refused, changing nothing,
 * when the older key cannot hold every row. A version no longer recorded is
 * left alone, so a retried revert is a no-op.
 */
export async function revertVersion(
  db: OpenMemoryDatabase,
  version: Version,
  changeIds: string[],
  progress: ApplyProgress = () => undefined,
): Promise<RevertedVersion> {
  const label = `reverting ${version.id}`;
  return db.transaction(async () => {
    progress(`${label}: locking the tables`);
    await db.lockTables(TABLE_ROLES.map((role) => db.tables[role]));
    const snapshot = await db.snapshot();
    requireBaseline(db, snapshot);
    const recorded = await db.recordedVersions();
    const rowCounts = await countOpenMemoryRows(db, snapshot);
    const none = { version: version.id, reverted: [], statements: 0, rowCounts, droppedValues: {}, keptTables: {} };
    if (!recorded.some((r) => r.version === version.id)) return { ...none, alreadyReverted: true };
    const later = VERSIONS.slice(VERSIONS.indexOf(version) + 1).filter((v) => recorded.some((r) => r.version === v.id));
    if (later.length > 0) refuse('PlanChanged', `${version.id} cannot be reverted while ${later.map((v) => v.id).join(', ')} is recorded`);

    const changes = version.changes.filter((c) => changeIds.includes(c.id)).reverse();
    for (const change of changes) await requireKeyHoldsEveryRow(db, version, change);
    const statements: string[] = [];
    const droppedValues: Record<string, number> = {};
    const keptTables: Record<string, number> = {};
    const reverted: Change[] = [];
    for (const change of changes) {
      const table = change.down.dropsTableIfEmpty && db.tables[change.down.dropsTableIfEmpty].name;
      if (table && rowCounts[table] > 0) {
        keptTables[table] = rowCounts[table];
        continue;
      }
      for (const e of expectationsFor(change, db.engine)) {
        if (e.kind !== 'column') continue;
        const values = await db.countNotNull(db.tables[e.table], e.column);
        if (values > 0) droppedValues[`${db.tables[e.table].name}.${e.column}`] = values;
      }
      statements.push(...change.down.sql[db.engine](db.tables));
      reverted.push(change);
    }
    statements.push(...unrecordVersionSql(db.tables, version));
    await runStatements(db, label, statements, progress);
    // The schema_version table was this run's when the version was its only row.
    if ((await db.countRows(db.tables.schemaVersion)) === 0) {
      const drop = `DROP TABLE ${db.tables.schemaVersion}`;
      await runStatements(db, label, [drop], progress);
      statements.push(drop);
    }

    progress(`${label}: checking, then committing`);
    const after = await db.snapshot();
    const problems = [
      ...BASELINE.expect.map((e) => evaluate(e, after, db.engine, db.tables)).filter((f) => !f.ok).map((f) => f.text),
      ...reverted.map((c) => changeState(c, db, after)).filter((c) => c.status === 'present').map((c) => `${c.id} is still present`),
      ...(await rowsNotKept(db, after, rowCounts)),
    ];
    if (problems.length > 0) {
      refuse('MigrationFailed', `${label}: the SQL ran but ${problems.join('; ')}. Rolled back: ${db.location} is still at ${version.id}.`);
    }
    return { ...none, reverted: reverted.map((c) => c.id), alreadyReverted: false, statements: statements.length, droppedValues, keptTables };
  });
}

const SHARED_KEYS_SHOWN = 20;

async function requireKeyHoldsEveryRow(db: OpenMemoryDatabase, version: Version, change: Change): Promise<void> {
  const key = change.down.restoresKey;
  if (!key) return;
  const table = db.tables[key.table];
  const shared = await db.sharedKeys(table, key.columns, SHARED_KEYS_SHOWN);
  if (shared.count === 0) return;
  const shown = shared.first.map((s) => `(${s.key.map((v) => (v === null ? 'NULL' : v)).join(', ')}): ${s.rows} rows`);
  const more = shared.count > shown.length ? `, and ${shared.count - shown.length} more` : '';
  refuse(
    'RollbackWouldLoseRows',
    `${db.location}: reverting ${version.id} would put back ${table.name}'s key (${key.columns.join(', ')}), but ${shared.count} ` +
      `value(s) of it are shared by rows written since that differ only in what ${version.id} added — ` +
      `${key.columns.join(', ')} ${shown.join('; ')}${more}. Nothing was changed. Merge or remove those rows, then ask again; ` +
      `or roll back with mode "restore-backup" and acceptLoss.`,
  );
}

/** Row counts of the OpenMemory tables that exist, by name. */
async function countOpenMemoryRows(db: OpenMemoryDatabase, snapshot: SchemaSnapshot): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const role of TABLE_ROLES) {
    const table = db.tables[role];
    if (snapshot.has(table.name)) counts[table.name] = await db.countRows(table);
  }
  return counts;
}

/** Tables whose row count differs from `before` (a table dropped must have been empty). */
async function rowsNotKept(db: OpenMemoryDatabase, after: SchemaSnapshot, before: Record<string, number>): Promise<string[]> {
  const problems: string[] = [];
  for (const role of TABLE_ROLES) {
    const table = db.tables[role];
    if (!(table.name in before) || table === db.tables.schemaVersion) continue;
    const now = after.has(table.name) ? await db.countRows(table) : 0;
    if (now !== before[table.name]) problems.push(`rows in ${table.name}: ${before[table.name]} before, ${now} after`);
  }
  return problems;
}

/** Columns added now must be NULL in every row: existing rows belong to the system user. */
async function valuesInAddedColumns(db: OpenMemoryDatabase, version: Version, added: string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const change of version.changes.filter((c) => added.includes(c.id))) {
    for (const e of expectationsFor(change, db.engine)) {
      if (e.kind !== 'column' || !e.existingRowsNull) continue;
      const set = await db.countNotNull(db.tables[e.table], e.column);
      if (set > 0) problems.push(`${set} existing ${db.tables[e.table].name} rows have ${e.column} set`);
    }
  }
  return problems;
}

async function runStatements(db: OpenMemoryDatabase, label: string, statements: string[], progress: ApplyProgress): Promise<void> {
  for (const [i, sql] of statements.entries()) {
    progress(`${label}: statement ${i + 1} of ${statements.length}: ${sql}`);
    try {
      await db.execute(sql);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err; // e.g. a lock held by a running OpenMemory: retryable
      refuse(
        'MigrationFailed',
        `${label}: statement ${i + 1} of ${statements.length} failed: ${(err as Error).message}\n  ${sql}\n` +
          `The transaction was rolled back; nothing of ${label} was committed.`,
      );
    }
  }
}

// ---------------------------------------------------------------------------
// Verify

/**
 * After the upgrade committed: the schema as expected and every version up to
 * the target recorded. Rows are not compared here: the apply checked them
 * under the write lock before committing, and since then live writes may
 * legitimately have added, changed or removed some.
 */
export async function verify(db: OpenMemoryDatabase, targetVersion: string): Promise<VerificationReport> {
  const versions = requireVersions(targetVersion);
  const snapshot = await db.snapshot();
  const recorded = await db.recordedVersions();
  const checks: CheckResult[] = [];
  for (const version of versions) {
    const record = recorded.find((r) => r.version === version.id);
    checks.push({ name: `schema_version ${version.id}`, ok: !!record, detail: recordDetail(record) });
    for (const change of version.changes) {
      for (const e of expectationsFor(change, db.engine)) {
        const finding = evaluate(e, snapshot, db.engine, db.tables);
        checks.push({ name: `${version.id} ${change.id}`, ok: finding.ok, detail: finding.text });
      }
    }
  }
  return { ok: checks.every((c) => c.ok), checks };
}

function recordDetail(record: RecordedVersion | undefined): string {
  if (!record) return 'not recorded';
  return record.appliedAt === null ? 'recorded, no time' : `recorded at ${new Date(record.appliedAt).toISOString()}`;
}

// ---------------------------------------------------------------------------

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
