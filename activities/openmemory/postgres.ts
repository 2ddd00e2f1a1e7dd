/**
 * An OpenMemory PostgreSQL schema (`pg`, one connection). Table names follow
 * OpenMemory's settings: OM_PG_SCHEMA, OM_PG_TABLE for memories,
 * OM_VECTOR_TABLE, and fixed openmemory_* names for the rest.
 *
 * The backup is a schema holding a copy of every table the upgrade may touch
 * plus a manifest of their columns, constraints and indexes; restore puts
 * each table back in place (same table object, so grants and dependants
 * survive) and drops the tables the upgrade created.
 */
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import type {
  OpenMemoryBackup,
  OpenMemoryDatabase,
  PostgresBackup,
  RecordedVersion,
  RestoreLoss,
  RestoreResult,
  SchemaSnapshot,
  SharedKeys,
  TableShape,
} from './database';
import { refuse } from './database';
import { TableName, TableRole, Tables, quoteIdent, quoteLiteral } from './migrations';

export interface PostgresTarget {
  url: string;
  schema?: string;
  table?: string;
  vectorTable?: string;
}

const MANIFEST = 'memshift_backup';
/** How long a statement waits for a lock held by someone else (a running OpenMemory) before giving up. */
const LOCK_TIMEOUT = '10s';

interface ManifestEntry {
  table_name: string;
  existed: boolean;
  row_count: string | null;
  columns: string[] | null;
  constraints: Definition[] | null;
  indexes: Definition[] | null;
}

interface Definition {
  name: string;
  definition: string;
}

export class PostgresOpenMemory implements OpenMemoryDatabase {
  readonly engine = 'postgres' as const;

  private constructor(
    readonly location: string,
    readonly tables: Tables,
    private readonly schema: string,
    private readonly client: Client,
  ) {}

  static async open(target: PostgresTarget): Promise<PostgresOpenMemory> {
    const url = parseUrl(target.url);
    const schema = target.schema ?? 'public';
    const location = `${url.protocol}//${url.host}${url.pathname} schema "${schema}"`;
    const client = new Client({ connectionString: target.url, application_name: 'memshift' });
    await client.connect();
    const db = new PostgresOpenMemory(location, tablesIn(schema, target), schema, client);
    try {
      await db.requireNamedObjects(target);
      return db;
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  async snapshot(): Promise<SchemaSnapshot> {
    return snapshotOf(this.client, this.schema);
  }

  async rowCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const table of await this.tableNames(this.schema)) counts[table] = await this.count(new TableName(this.schema, table));
    return counts;
  }

  async recordedVersions(): Promise<RecordedVersion[]> {
    if (!(await this.tableNames(this.schema)).includes(this.tables.schemaVersion.name)) return [];
    const { rows } = await this.client.query<{ version: string; applied_at: string | null }>(
      `SELECT version, applied_at FROM ${this.tables.schemaVersion} ORDER BY applied_at, version`,
    );
    return rows.map((r) => ({ version: r.version, appliedAt: r.applied_at === null ? null : Number(r.applied_at) }));
  }

  async countRows(table: TableName): Promise<number> {
    return this.count(table);
  }

  async sharedKeys(table: TableName, columns: string[], limit: number): Promise<SharedKeys> {
    const list = columns.map(quoteIdent).join(', ');
    const shared = `SELECT ${list}, count(*) AS rows FROM ${table} GROUP BY ${list} HAVING count(*) > 1`;
    const { rows: total } = await this.client.query<{ n: string }>(`SELECT count(*) AS n FROM (${shared}) AS shared`);
    const { rows } = await this.client.query({ text: `${shared} ORDER BY ${list} LIMIT ${limit}`, rowMode: 'array' });
    const first = (rows as unknown[][]).map((row) => ({
      key: row.slice(0, -1).map((v) => (v === null ? null : String(v))),
      rows: Number(row.at(-1)),
    }));
    return { count: Number(total[0].n), first };
  }

  async lockTables(tables: TableName[]): Promise<void> {
    const existing = await this.tableNames(this.schema);
    const present = tables.filter((t) => existing.includes(t.name));
    if (present.length > 0) await this.guard(() => this.client.query(`LOCK TABLE ${present.join(', ')} IN ACCESS EXCLUSIVE MODE`));
  }

  async countNotNull(table: TableName, column: string): Promise<number> {
    const { rows } = await this.client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${quoteIdent(column)} IS NOT NULL`);
    return Number(rows[0].n);
  }

  async execute(sql: string): Promise<void> {
    await this.guard(() => this.client.query(sql));
  }

  async transaction<T>(work: () => Promise<T>, isolation = 'READ COMMITTED'): Promise<T> {
    await this.guard(() => this.client.query(`BEGIN ISOLATION LEVEL ${isolation}`));
    try {
      await this.client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
      const result = await this.guard(work);
      await this.client.query('COMMIT');
      return result;
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /**
   * One transaction on one snapshot: the schema (its comment naming `owner`),
   * a copy of each table that exists, and the manifest — so a backup is whole
   * or absent, and a retry of the same owner that finds it returns it. Each
   * copy is checked row for row against its table before the transaction commits.
   */
  async backup(backupSchema: string, roles: TableRole[], owner: string | undefined): Promise<PostgresBackup> {
    if (await this.schemaExists(backupSchema)) return this.existingBackup(backupSchema, owner);
    const backup = new TableName(backupSchema, MANIFEST);
    return this.transaction(async () => {
      const live = await this.snapshot();
      await this.client.query(`CREATE SCHEMA ${quoteIdent(backupSchema)}`);
      if (owner !== undefined) await this.client.query(`COMMENT ON SCHEMA ${quoteIdent(backupSchema)} IS ${quoteLiteral(owner)}`);
      await this.client.query(
        `CREATE TABLE ${backup} (table_name TEXT PRIMARY KEY, existed BOOLEAN NOT NULL, row_count BIGINT, columns JSONB, constraints JSONB, indexes JSONB)`,
      );
      for (const role of roles) {
        const table = this.tables[role];
        const shape = live.get(table.name);
        if (!shape) {
          await this.client.query(`INSERT INTO ${backup} (table_name, existed) VALUES ($1, false)`, [table.name]);
          continue;
        }
        const copy = new TableName(backupSchema, table.name);
        await this.client.query(`CREATE TABLE ${copy} AS TABLE ${table}`);
        const rows = await this.count(table);
        const differing = await this.differingRows(copy, table, shape.columns);
        if (differing > 0) refuse('BackupFailed', `copy of ${table} differs from it in ${differing} rows`);
        await this.client.query(
          `INSERT INTO ${backup} (table_name, existed, row_count, columns, constraints, indexes) VALUES ($1, true, $2, $3, $4, $5)`,
          [table.name, rows, JSON.stringify(shape.columns), JSON.stringify(await this.constraintsOf(table)), JSON.stringify(await this.indexesOf(table))],
        );
      }
      return this.readBackup(backupSchema);
    }, 'REPEATABLE READ');
  }

  /** Per backed-up table: restore puts the copy's rows in place of today's, or drops a table the backup says did not exist. */
  async restoreLosses(backup: OpenMemoryBackup): Promise<RestoreLoss[]> {
    const { schema } = requirePostgresBackup(backup);
    const live = await this.snapshot();
    const losses: RestoreLoss[] = [];
    for (const entry of await this.manifest(schema)) {
      const shape = live.get(entry.table_name);
      if (!shape) continue;
      const table = new TableName(this.schema, entry.table_name);
      const rowsNow = await this.count(table);
      const columns = entry.columns ?? [];
      const comparable = entry.existed && columns.every((c) => shape.columns.includes(c));
      const discarded = comparable ? await this.rowsMissing(table, new TableName(schema, entry.table_name), columns) : rowsNow;
      losses.push({ table: entry.table_name, rowsNow, rowsInBackup: Number(entry.row_count ?? 0), discarded });
    }
    return losses;
  }

  /**
   * In one transaction, per backed-up table: drop the constraints, indexes
   * and columns the backup does not have, put every row back, re-create the
   * constraints and indexes it had, and check the rows are exactly the
   * backup's; tables that did not exist at backup time are dropped.
   */
  async restore(backup: OpenMemoryBackup): Promise<RestoreResult> {
    const { schema } = requirePostgresBackup(backup);
    const manifest = await this.manifest(schema);
    return this.transaction(async () => {
      const tables: RestoreResult['tables'] = [];
      for (const entry of manifest) {
        const table = new TableName(this.schema, entry.table_name);
        if (entry.existed) {
          await this.restoreTable(new TableName(schema, entry.table_name), table, entry);
          tables.push({ name: entry.table_name, rows: Number(entry.row_count), action: 'restored' });
        } else {
          await this.client.query(`DROP TABLE IF EXISTS ${table}`);
          tables.push({ name: entry.table_name, rows: 0, action: 'dropped' });
        }
      }
      return { engine: 'postgres' as const, tables };
    });
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  private async restoreTable(copy: TableName, table: TableName, entry: ManifestEntry): Promise<void> {
    const columns = entry.columns ?? [];
    const constraints = entry.constraints ?? [];
    const indexes = entry.indexes ?? [];
    const shape = (await this.snapshot()).get(table.name);
    if (!shape) await this.client.query(`CREATE TABLE ${table} (LIKE ${copy})`);
    for (const c of await this.constraintsOf(table)) {
      if (!constraints.some((k) => sameDefinition(k, c))) await this.client.query(`ALTER TABLE ${table} DROP CONSTRAINT ${quoteIdent(c.name)}`);
    }
    for (const i of await this.indexesOf(table)) {
      if (!indexes.some((k) => sameDefinition(k, i))) await this.client.query(`DROP INDEX ${new TableName(table.schema, i.name)}`);
    }
    const liveColumns = shape?.columns ?? columns;
    for (const column of liveColumns.filter((c) => !columns.includes(c))) {
      await this.client.query(`ALTER TABLE ${table} DROP COLUMN ${quoteIdent(column)}`);
    }
    for (const column of columns.filter((c) => !liveColumns.includes(c))) {
      await this.client.query(`ALTER TABLE ${table} ADD COLUMN ${quoteIdent(column)} ${await this.columnType(copy, column)}`);
    }
    const list = columns.map(quoteIdent).join(', ');
    await this.client.query(`TRUNCATE ${table}`);
    await this.client.query(`INSERT INTO ${table} (${list}) SELECT ${list} FROM ${copy}`);
    const present = await this.constraintsOf(table);
    for (const c of constraints.filter((k) => !present.some((p) => p.name === k.name))) {
      await this.client.query(`ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(c.name)} ${c.definition}`);
    }
    const presentIndexes = await this.indexesOf(table);
    for (const i of indexes.filter((k) => !presentIndexes.some((p) => p.name === k.name))) await this.client.query(i.definition);
    const rows = await this.count(table);
    const differing = await this.differingRows(copy, table, columns);
    if (rows !== Number(entry.row_count) || differing > 0) {
      refuse('RestoreFailed', `${table} after restore: ${rows} rows (backup ${entry.row_count}), ${differing} differing; rolled back`);
    }
  }

  /** Rows in one table but not the other, either way, on `columns` (duplicates counted). */
  private async differingRows(a: TableName, b: TableName, columns: string[]): Promise<number> {
    return (await this.rowsMissing(a, b, columns)) + (await this.rowsMissing(b, a, columns));
  }

  private async rowsMissing(from: TableName, to: TableName, columns: string[]): Promise<number> {
    const list = columns.map(quoteIdent).join(', ');
    const { rows } = await this.client.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT ${list} FROM ${from} EXCEPT ALL SELECT ${list} FROM ${to}) AS missing`,
    );
    return Number(rows[0].n);
  }

  /** Named constraints other than NOT NULL (columns carry those). */
  private async constraintsOf(table: TableName): Promise<Definition[]> {
    const { rows } = await this.client.query<Definition>(
      `SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = to_regclass($1) AND contype <> 'n' ORDER BY conname`,
      [table.toString()],
    );
    return rows;
  }

  /** Indexes not owned by a constraint (those come back with their constraint). */
  private async indexesOf(table: TableName): Promise<Definition[]> {
    const { rows } = await this.client.query<Definition>(
      `SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = to_regclass($1)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname`,
      [table.toString()],
    );
    return rows;
  }

  private async columnType(table: TableName, column: string): Promise<string> {
    const { rows } = await this.client.query<{ type: string }>(
      `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2`,
      [table.toString(), column],
    );
    return rows[0].type;
  }

  private async manifest(backupSchema: string): Promise<ManifestEntry[]> {
    const manifest = new TableName(backupSchema, MANIFEST);
    if (!(await this.tableNames(backupSchema)).includes(MANIFEST)) {
      refuse('RestoreFailed', `no memshift backup in schema "${backupSchema}" (${manifest} is missing)`);
    }
    const { rows } = await this.client.query<ManifestEntry>(`SELECT * FROM ${manifest} ORDER BY table_name`);
    return rows;
  }

  private async readBackup(backupSchema: string): Promise<PostgresBackup> {
    const tables = (await this.manifest(backupSchema)).map((e) => ({ name: e.table_name, existed: e.existed, rows: Number(e.row_count ?? 0) }));
    return { engine: 'postgres', schema: backupSchema, tables };
  }

  private async existingBackup(backupSchema: string, owner: string | undefined): Promise<PostgresBackup> {
    if (!(await this.tableNames(backupSchema)).includes(MANIFEST)) {
      refuse('BackupLocationExists', `schema "${backupSchema}" already exists and is not a memshift backup; name a new backup schema`);
    }
    const { rows } = await this.client.query<{ owner: string | null }>(
      `SELECT obj_description(oid, 'pg_namespace') AS owner FROM pg_namespace WHERE nspname = $1`,
      [backupSchema],
    );
    if (owner === undefined || rows[0].owner !== owner) {
      refuse('BackupLocationExists', `schema "${backupSchema}" holds an earlier memshift backup, not this run's; name a new backup schema`);
    }
    return this.readBackup(backupSchema);
  }

  /** Schema and the tables the plan names must exist: a typo should say so, not "not OpenMemory". */
  private async requireNamedObjects(target: PostgresTarget): Promise<void> {
    if (!(await this.schemaExists(this.schema))) {
      const { rows } = await this.client.query<{ nspname: string }>(
        `SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`,
      );
      refuse('SchemaNotFound', `schema "${this.schema}" does not exist in ${this.location} (OM_PG_SCHEMA); schemas there: ${rows.map((r) => r.nspname).join(', ')}`);
    }
    const existing = await this.tableNames(this.schema);
    const named: [string | undefined, TableName, string][] = [
      [target.table, this.tables.memories, 'table (OM_PG_TABLE)'],
      [target.vectorTable, this.tables.vectors, 'vectorTable (OM_VECTOR_TABLE)'],
    ];
    for (const [given, table, setting] of named) {
      if (given !== undefined && !existing.includes(table.name)) {
        refuse('TableNotFound', `the plan's ${setting} ${table} does not exist in ${this.location}; tables there: ${existing.join(', ') || 'none'}`);
      }
    }
  }

  private async schemaExists(schema: string): Promise<boolean> {
    const { rowCount } = await this.client.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [schema]);
    return rowCount === 1;
  }

  private async tableNames(schema: string): Promise<string[]> {
    const { rows } = await this.client.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
      [schema],
    );
    return rows.map((r) => r.relname);
  }

  private async count(table: TableName): Promise<number> {
    const { rows } = await this.client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
    return Number(rows[0].n);
  }

  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if ((err as { code?: string }).code === '55P03') {
        // lock_not_available: retryable, it clears when the other session lets go.
        throw ApplicationFailure.retryable(`${this.location}: a table is locked by another session; stop the OpenMemory server that uses it`, 'DatabaseLocked');
      }
      throw err;
    }
  }
}

/**
 * Tables, columns, indexes and row keys of one schema, in one query. The key
 * is the primary key, or — for a table without one — a UNIQUE NULLS NOT
 * DISTINCT index (read through to_jsonb so servers before 15, which lack the
 * column, still answer).
 */
async function snapshotOf(client: Client, schema: string): Promise<SchemaSnapshot> {
  const { rows } = await client.query<{ name: string; columns: string[]; indexes: (IndexRow | null)[] }>(
    `SELECT c.relname AS name,
            (SELECT json_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT json_agg(json_build_object(
                      'name', i.relname,
                      'columns', (SELECT json_agg(a.attname ORDER BY k.ord)
                                    FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                                    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum),
                      'primary', x.indisprimary,
                      'uniqueNullsNotDistinct', x.indisunique AND coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false))
                    ORDER BY i.relname)
               FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid) AS indexes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
    [schema],
  );
  const snapshot: SchemaSnapshot = new Map();
  for (const row of rows) snapshot.set(row.name, tableShape(row.columns ?? [], (row.indexes ?? []).filter((i): i is IndexRow => i !== null)));
  return snapshot;
}

interface IndexRow {
  name: string;
  columns: string[] | null;
  primary: boolean;
  uniqueNullsNotDistinct: boolean;
}

function tableShape(columns: string[], indexes: IndexRow[]): TableShape {
  const keyIndex = indexes.find((i) => i.primary) ?? indexes.find((i) => i.uniqueNullsNotDistinct);
  return {
    columns,
    key: keyIndex?.columns ?? [],
    indexes: indexes.map((i) => ({ name: i.name, columns: i.columns ?? [] })),
  };
}

function tablesIn(schema: string, target: PostgresTarget): Tables {
  const names: Record<TableRole, string> = {
    memories: target.table ?? 'openmemory_memories',
    vectors: target.vectorTable ?? 'openmemory_vectors',
    waypoints: 'openmemory_waypoints',
    embedLogs: 'openmemory_embed_logs',
    users: 'openmemory_users',
    stats: 'openmemory_stats',
    schemaVersion: 'schema_version',
  };
  return Object.fromEntries(Object.entries(names).map(([role, name]) => [role, new TableName(schema, name)])) as Tables;
}

/** Plans hold no secrets: a password in the URL is refused, credentials come from PGUSER/PGPASSWORD. */
function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refuse('InvalidTarget', `"${raw}" is not a PostgreSQL URL (postgres://host:port/database)`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') refuse('InvalidTarget', `${url.protocol} is not a PostgreSQL URL scheme`);
  if (url.password) refuse('InvalidTarget', 'the PostgreSQL URL carries a password; set PGPASSWORD in the worker environment instead');
  return url;
}

function requirePostgresBackup(backup: OpenMemoryBackup): PostgresBackup {
  return backup.engine === 'postgres' ? backup : refuse('InvalidTarget', `a ${backup.engine} backup cannot restore a PostgreSQL database`);
}

function sameDefinition(a: Definition, b: Definition): boolean {
  return a.name === b.name && a.definition === b.definition;
}
