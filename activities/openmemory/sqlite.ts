/**
 * An OpenMemory SQLite file (better-sqlite3). Other writers may keep writing
 * (WAL mode): backup and each version's apply or reverse hold the file's
 * write lock while they run, so those writers wait and then carry on. An
 * OpenMemory holding the file with locking_mode=EXCLUSIVE surfaces as a
 * "locked" error that retries until it is gone.
 */
import { ApplicationFailure } from '@temporalio/common';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type {
  OpenMemoryBackup,
  OpenMemoryDatabase,
  RecordedVersion,
  RestoreLoss,
  RestoreResult,
  SchemaSnapshot,
  SharedKeys,
  SqliteBackup,
} from './database';
import { refuse } from './database';
import { TableName, TableRole, Tables, quoteIdent } from './migrations';

const BACKUP_ALIAS = 'memshift_backup';
/** How long a write waits for a lock held by someone else (a running OpenMemory) before failing as DatabaseLocked, to be retried. */
const BUSY_TIMEOUT_MS = 5_000;

export class SqliteOpenMemory implements OpenMemoryDatabase {
  readonly engine = 'sqlite' as const;
  readonly tables: Tables = {
    memories: new TableName(null, 'memories'),
    vectors: new TableName(null, 'vectors'),
    waypoints: new TableName(null, 'waypoints'),
    embedLogs: new TableName(null, 'embed_logs'),
    users: new TableName(null, 'users'),
    stats: new TableName(null, 'stats'),
    schemaVersion: new TableName(null, 'schema_version'),
  };
  private closed = false;

  private constructor(
    readonly location: string,
    private readonly db: Database.Database,
  ) {}

  /**
   * Opens read-write even to inspect: a read-only connection to a WAL
   * database leaves -wal and -shm files behind. Nothing is written unless a
   * method says so.
   */
  static open(path: string): SqliteOpenMemory {
    if (!existsSync(path)) refuse('DatabaseNotFound', `no SQLite database at ${path}`);
    const db = new Database(path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    try {
      db.prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_NOTADB') refuse('NotOpenMemory', `${path} is not an SQLite database`);
      throw lockedOr(err, path);
    }
    // OpenMemory runs with foreign keys off, and SQLite's table-rebuild
    // procedure needs them off (it cannot be switched inside a transaction).
    db.pragma('foreign_keys = OFF');
    return new SqliteOpenMemory(path, db);
  }

  async snapshot(): Promise<SchemaSnapshot> {
    return this.guard(() => {
      const snapshot: SchemaSnapshot = new Map();
      for (const table of this.tableNames()) {
        const columns = this.db.prepare('SELECT name, pk FROM pragma_table_info(?) ORDER BY cid').all(table) as { name: string; pk: number }[];
        const indexes = (this.db.prepare('SELECT name FROM pragma_index_list(?)').pluck().all(table) as string[]).map((name) => ({
          name,
          columns: this.db.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').pluck().all(name) as string[],
        }));
        const key = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name);
        snapshot.set(table, { columns: columns.map((c) => c.name), key, indexes });
      }
      return snapshot;
    });
  }

  async rowCounts(): Promise<Record<string, number>> {
    return this.guard(() =>
      Object.fromEntries(this.tableNames().map((t) => [t, this.db.prepare(`SELECT count(*) FROM ${quoteIdent(t)}`).pluck().get() as number])),
    );
  }

  async recordedVersions(): Promise<RecordedVersion[]> {
    return this.guard(() => {
      if (!this.tableNames().includes(this.tables.schemaVersion.name)) return [];
      return this.db
        .prepare(`SELECT version, applied_at AS appliedAt FROM ${this.tables.schemaVersion} ORDER BY applied_at, version`)
        .all() as RecordedVersion[];
    });
  }

  async countRows(table: TableName): Promise<number> {
    return this.guard(() => this.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number);
  }

  async sharedKeys(table: TableName, columns: string[], limit: number): Promise<SharedKeys> {
    const list = columns.map(quoteIdent).join(', ');
    return this.guard(() => {
      const shared = `SELECT ${list}, count(*) AS rows FROM ${table} GROUP BY ${list} HAVING count(*) > 1`;
      const count = this.db.prepare(`SELECT count(*) FROM (${shared})`).pluck().get() as number;
      const first = (this.db.prepare(`${shared} ORDER BY ${list} LIMIT ${limit}`).raw().all() as unknown[][]).map((row) => ({
        key: row.slice(0, -1).map((v) => (v === null ? null : String(v))),
        rows: row.at(-1) as number,
      }));
      return { count, first };
    });
  }

  async countNotNull(table: TableName, column: string): Promise<number> {
    return this.guard(() => this.db.prepare(`SELECT count(*) FROM ${table} WHERE ${quoteIdent(column)} IS NOT NULL`).pluck().get() as number);
  }

  async execute(sql: string): Promise<void> {
    this.guard(() => this.db.exec(sql));
  }

  /**
   * SQLite DDL is transactional — ALTER TABLE, CREATE/DROP TABLE and INDEX,
   * RENAME all roll back — so a version runs whole or not at all, and a
   * crash at any statement leaves the database as it was before the version.
   */
  /** BEGIN IMMEDIATE, which `transaction` runs, already holds the write lock of the whole file. */
  async lockTables(): Promise<void> {}

  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.beginImmediate();
    try {
      const result = await work();
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  /**
   * An exact copy of the file, so a restore gives back the very same bytes.
   * (The online backup API would rewrite the copy's header counters.) With
   * the WAL checkpointed into the file and the write lock held, the file is
   * the whole database and cannot change while it is copied.
   *
   * `file` must not exist, unless an earlier attempt of the same `owner`
   * made it: `${file}.owner`, written before the copy, says whose it is.
   */
  async backup(file: string, _wholeFileIsCopied: TableRole[], owner: string | undefined): Promise<SqliteBackup> {
    const ownerFile = `${file}.owner`;
    const ownedByThisRun = owner !== undefined && existsSync(ownerFile) && (await readFile(ownerFile, 'utf8')) === owner;
    if (existsSync(file)) {
      if (!ownedByThisRun) {
        refuse('BackupLocationExists', `backup file ${file} already exists and is not this run's; name a new backup file (memshift never overwrites one)`);
      }
      return this.earlierAttemptsBackup(file);
    }
    if (existsSync(ownerFile) && !ownedByThisRun) {
      refuse('BackupLocationExists', `${ownerFile} already exists and is not this run's; name a new backup file`);
    }
    if (owner !== undefined && !ownedByThisRun) await writeFile(ownerFile, owner, { flag: 'wx' });
    const { rowCounts, sha256 } = await this.whileWriteLocked(async () => {
      await copyDurably(this.location, file);
      return { rowCounts: await this.rowCounts(), sha256: await sha256Of(this.location) };
    });
    const backup: SqliteBackup = { engine: 'sqlite', file, sha256, bytes: (await stat(file)).size, rowCounts };
    await verifyBackupFile(backup);
    return backup;
  }

  async restoreLosses(backup: OpenMemoryBackup): Promise<RestoreLoss[]> {
    const { file } = requireSqliteBackup(backup);
    return this.guard(() => {
      this.db.prepare(`ATTACH DATABASE ? AS ${BACKUP_ALIAS}`).run(file);
      try {
        const inBackup = this.tableNames(BACKUP_ALIAS);
        return this.tableNames().map((table) => this.restoreLoss(table, inBackup.includes(table)));
      } finally {
        this.db.exec(`DETACH DATABASE ${BACKUP_ALIAS}`);
      }
    });
  }

  /**
   * Puts the backup file in place of the database: copied beside it, then
   * renamed over it, after removing the -wal/-shm/-journal files that belong
   * to the upgraded database (left, SQLite would replay them onto the
   * restored file). Idempotent; ends with the file's hash equal to the backup's.
   */
  async restore(backup: OpenMemoryBackup): Promise<RestoreResult> {
    const expected = requireSqliteBackup(backup);
    if ((await sha256Of(expected.file)) !== expected.sha256) {
      refuse('RestoreFailed', `backup ${expected.file} no longer matches the backup taken (sha256 differs); it was changed or damaged`);
    }
    // Make sure nobody else has the database open, then let go of it.
    this.guard(() => this.db.exec('BEGIN EXCLUSIVE; ROLLBACK'));
    await this.close();
    const staging = `${this.location}.memshift-restore`;
    await copyDurably(expected.file, staging);
    for (const suffix of ['-wal', '-shm', '-journal']) await rm(`${this.location}${suffix}`, { force: true });
    await rename(staging, this.location);
    await fsyncDir(dirname(this.location));
    const sha256 = await sha256Of(this.location);
    if (sha256 !== expected.sha256) refuse('RestoreFailed', `${this.location} does not match backup ${expected.file} after the copy`);
    const tables = Object.entries(expected.rowCounts).map(([name, rows]) => ({ name, rows, action: 'restored' as const }));
    return { engine: 'sqlite', tables, sha256 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /**
   * Ordinary tables. Virtual tables are left out: their module (e.g.
   * sqlite-vec's vec0) may not be loaded here, and OpenMemory has none.
   */
  private tableNames(schema = 'main'): string[] {
    return this.db
      .prepare(
        `SELECT name FROM ${quoteIdent(schema)}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name`,
      )
      .pluck()
      .all() as string[];
  }

  private restoreLoss(table: string, inBackup: boolean): RestoreLoss {
    const live = `main.${quoteIdent(table)}`;
    const rowsNow = this.db.prepare(`SELECT count(*) FROM ${live}`).pluck().get() as number;
    if (!inBackup) return { table, rowsNow, rowsInBackup: 0, discarded: rowsNow };
    const copy = `${BACKUP_ALIAS}.${quoteIdent(table)}`;
    const rowsInBackup = this.db.prepare(`SELECT count(*) FROM ${copy}`).pluck().get() as number;
    const columns = this.db.prepare(`SELECT name FROM pragma_table_info(?, ?) ORDER BY cid`).pluck().all(table, BACKUP_ALIAS) as string[];
    const liveColumns = this.db.prepare(`SELECT name FROM pragma_table_info(?) ORDER BY cid`).pluck().all(table) as string[];
    if (!columns.every((c) => liveColumns.includes(c))) return { table, rowsNow, rowsInBackup, discarded: rowsNow };
    const list = columns.map(quoteIdent).join(', ');
    const discarded = this.db
      .prepare(`SELECT count(*) FROM (SELECT ${list} FROM ${live} EXCEPT SELECT ${list} FROM ${copy})`)
      .pluck()
      .get() as number;
    return { table, rowsNow, rowsInBackup, discarded };
  }

  /** This run's earlier attempt made `file` (the database has had live writes since): accepted when it is a healthy SQLite copy. */
  private async earlierAttemptsBackup(file: string): Promise<SqliteBackup> {
    const copy = new Database(file, { fileMustExist: true, readonly: true });
    let rowCounts: Record<string, number>;
    try {
      const tables = copy.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'`).pluck().all() as string[];
      rowCounts = Object.fromEntries(tables.map((t) => [t, copy.prepare(`SELECT count(*) FROM ${quoteIdent(t)}`).pluck().get() as number]));
    } finally {
      copy.close();
    }
    const backup: SqliteBackup = { engine: 'sqlite', file, sha256: await sha256Of(file), bytes: (await stat(file)).size, rowCounts };
    await verifyBackupFile(backup);
    return backup;
  }

  /**
   * Runs `work` with the WAL checkpointed into the file and the write lock
   * held. Live writers may slip a write in between the two: then it tries
   * again, for up to BUSY_TIMEOUT_MS, before failing as DatabaseLocked.
   */
  private async whileWriteLocked<T>(work: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + BUSY_TIMEOUT_MS;
    const wal = `${this.location}-wal`;
    for (;;) {
      const [checkpoint] = this.guard(() => this.db.pragma('wal_checkpoint(TRUNCATE)')) as { busy: number }[];
      if (!checkpoint?.busy) {
        const walWritten = Symbol('wal written');
        const result = await this.transaction(async () => {
          if (existsSync(wal) && (await stat(wal)).size > 0) return walWritten;
          return work();
        });
        if (result !== walWritten) return result as T;
      }
      if (Date.now() >= deadline) throw locked(this.location);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * BEGIN IMMEDIATE, waiting up to BUSY_TIMEOUT_MS for the write lock
   * without blocking the event loop (better-sqlite3's busy timeout would), so
   * the activity keeps heartbeating while someone else holds the database.
   */
  private async beginImmediate(): Promise<void> {
    const deadline = Date.now() + BUSY_TIMEOUT_MS;
    this.db.pragma('busy_timeout = 0');
    try {
      for (;;) {
        try {
          this.db.exec('BEGIN IMMEDIATE');
          return;
        } catch (err) {
          if (!isBusy(err) || Date.now() >= deadline) throw lockedOr(err, this.location);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  private guard<T>(work: () => T): T {
    try {
      return work();
    } catch (err) {
      throw lockedOr(err, this.location);
    }
  }
}

function requireSqliteBackup(backup: OpenMemoryBackup): SqliteBackup {
  return backup.engine === 'sqlite' ? backup : refuse('InvalidTarget', `a ${backup.engine} backup cannot restore an SQLite database`);
}

/** The backup opens as a healthy SQLite database with the same row counts, and reading it left it unchanged. */
async function verifyBackupFile(backup: SqliteBackup): Promise<void> {
  const copy = new Database(backup.file, { fileMustExist: true });
  try {
    const integrity = copy.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') refuse('BackupFailed', `backup ${backup.file} fails integrity_check: ${integrity}`);
    for (const [table, rows] of Object.entries(backup.rowCounts)) {
      const copied = copy.prepare(`SELECT count(*) FROM ${quoteIdent(table)}`).pluck().get();
      if (copied !== rows) refuse('BackupFailed', `backup ${backup.file}: ${table} has ${copied} rows, the database ${rows}`);
    }
  } finally {
    copy.close();
  }
  if ((await sha256Of(backup.file)) !== backup.sha256) refuse('BackupFailed', `backup ${backup.file} differs from the database it copies`);
}

function locked(path: string): ApplicationFailure {
  // Retryable: it clears when whoever holds the database (usually a running OpenMemory) lets go.
  return ApplicationFailure.retryable(`${path} is locked by another process; stop the OpenMemory server that uses it`, 'DatabaseLocked');
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'); // extended codes too, e.g. SQLITE_BUSY_SNAPSHOT
}

function lockedOr(err: unknown, path: string): unknown {
  return isBusy(err) ? locked(path) : err;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Copies to `${to}.partial`, flushes it to disk and renames it into place, so `to` is whole or absent. */
async function copyDurably(from: string, to: string): Promise<void> {
  const partial = `${to}.partial`;
  await copyFile(from, partial);
  const handle = await open(partial, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(partial, to);
  await fsyncDir(dirname(to));
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
