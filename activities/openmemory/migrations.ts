/**
 * OpenMemory schema versions as data. Each version is a list of changes; each
 * change carries the SQL that makes it (per engine) and the expectations that
 * prove it is there, so inspection can say change by change what a database
 * has — including a database an earlier, crashed script left half-migrated.
 *
 * Each change also carries its reverse (`down`), which keeps every row —
 * rows written after the upgrade included — so a rollback never needs to put
 * an old backup over newer data.
 *
 * Adding a version is appending one entry to VERSIONS.
 */

export type Engine = 'sqlite' | 'postgres';

/** The OpenMemory tables a migration talks about, by role (names differ per engine and plan). */
export const TABLE_ROLES = ['memories', 'vectors', 'waypoints', 'embedLogs', 'users', 'stats', 'schemaVersion'] as const;
export type TableRole = (typeof TABLE_ROLES)[number];

/**
 * A table as SQL sees it. Interpolating it in a template gives the quoted,
 * schema-qualified name (`"public"."openmemory_memories"`); `.name` is the
 * bare name, for constraint names derived from it.
 */
export class TableName {
  constructor(
    readonly schema: string | null,
    readonly name: string,
  ) {}

  toString(): string {
    return this.schema === null ? quoteIdent(this.name) : `${quoteIdent(this.schema)}.${quoteIdent(this.name)}`;
  }
}

export type Tables = Record<TableRole, TableName>;

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** One fact about the schema that inspection can confirm or refute. */
export type Expectation = (
  | { kind: 'table'; table: TableRole; columns: string[] }
  /** `existingRowsNull`: rows that predate the change have it NULL, and the apply checks so before committing. */
  | { kind: 'column'; table: TableRole; column: string; existingRowsNull?: boolean }
  | { kind: 'index'; table: TableRole; name: Record<Engine, string>; columns: string[] }
  /**
   * The columns that identify a row: the primary key; on PostgreSQL, where a
   * primary-key column cannot hold NULL, a UNIQUE NULLS NOT DISTINCT
   * constraint stands in when the table has no primary key.
   */
  | { kind: 'key'; table: TableRole; columns: string[] }
) & { only?: Engine };

/**
 * One fact about the schema and the SQL that makes it. A missing change runs
 * all its statements, so they must reach the same end from any point an
 * interrupted earlier run left: a change is one statement, or statements
 * that clear their own leftovers first.
 */
export interface Change {
  /** Stable id, used in plans and approvals: a plan approved for some changes applies only those. */
  id: string;
  description: string;
  expect: Expectation[];
  sql: Record<Engine, (t: Tables) => string[]>;
  /**
   * Tables the statements create and remove again. One left over is the trace
   * of an interrupted run; the statements drop it and start that step afresh.
   */
  scratchTables?: Partial<Record<Engine, string[]>>;
  down: Down;
}

/**
 * The reverse of a change, run newest change first, in one transaction with
 * the rest of its version's reverse. It keeps every row. Values in a column
 * the change added go with the column (the older version has nowhere to keep
 * them); the reverse reports how many there were.
 */
export interface Down {
  sql: Record<Engine, (t: Tables) => string[]>;
  /**
   * The statements drop this table, which the change created: only while it
   * is empty. With rows (written since the upgrade) it is kept — the older
   * version never reads it — and reported.
   */
  dropsTableIfEmpty?: TableRole;
  /**
   * The key the statements put back. Rows that now share a value of it — they
   * differ only in what the change added — cannot all be kept under it, so
   * the reverse is refused, naming those key values.
   */
  restoresKey?: { table: TableRole; columns: string[] };
}

export interface Version {
  id: string;
  description: string;
  changes: Change[];
}

/**
 * What any OpenMemory database (v1.1 or later) contains: the tables and
 * columns v1.2.0 reads and rebuilds. Lacking any of them, a database is not
 * one this runbook can upgrade.
 */
export const BASELINE: { id: string; expect: Expectation[] } = {
  id: '1.1',
  expect: [
    { kind: 'table', table: 'memories', columns: ['id', 'content', 'primary_sector', 'created_at'] },
    { kind: 'table', table: 'vectors', columns: ['id', 'sector', 'v', 'dim'] },
    { kind: 'table', table: 'waypoints', columns: ['src_id', 'dst_id', 'weight', 'created_at', 'updated_at'] },
    { kind: 'table', table: 'embedLogs', columns: ['id', 'status'] },
  ],
};

const v1_2_0: Version = {
  id: '1.2.0',
  description: 'Multi-user tenant support: user_id columns, waypoints keyed by (src_id, user_id), users and stats tables',
  changes: [
    {
      id: 'memories.user_id',
      description: 'memories gains a user_id column (NULL = the system user)',
      expect: [{ kind: 'column', table: 'memories', column: 'user_id', existingRowsNull: true }],
      sql: {
        sqlite: (t) => [`ALTER TABLE ${t.memories} ADD COLUMN user_id TEXT`],
        postgres: (t) => [`ALTER TABLE ${t.memories} ADD COLUMN user_id TEXT`],
      },      down: dropColumn('memories', 'user_id'),
    },
    {
      id: 'memories.user_id.index',
      description: 'index on memories(user_id)',
      expect: [index('memories', 'idx_memories_user', 'openmemory_memories_user_idx', ['user_id'])],
      sql: {
        sqlite: (t) => [`CREATE INDEX idx_memories_user ON ${t.memories}(user_id)`],
        postgres: (t) => [`CREATE INDEX openmemory_memories_user_idx ON ${t.memories}(user_id)`],
      },      down: dropIndex('memories', 'idx_memories_user', 'openmemory_memories_user_idx'),
    },
    {
      id: 'vectors.user_id',
      description: 'vectors gains a user_id column',
      expect: [{ kind: 'column', table: 'vectors', column: 'user_id', existingRowsNull: true }],
      sql: {
        sqlite: (t) => [`ALTER TABLE ${t.vectors} ADD COLUMN user_id TEXT`],
        postgres: (t) => [`ALTER TABLE ${t.vectors} ADD COLUMN user_id TEXT`],
      },      down: dropColumn('vectors', 'user_id'),
    },
    {
      id: 'vectors.user_id.index',
      description: 'index on vectors(user_id)',
      expect: [index('vectors', 'idx_vectors_user', 'openmemory_vectors_user_idx', ['user_id'])],
      sql: {
        sqlite: (t) => [`CREATE INDEX idx_vectors_user ON ${t.vectors}(user_id)`],
        postgres: (t) => [`CREATE INDEX openmemory_vectors_user_idx ON ${t.vectors}(user_id)`],
      },      down: dropIndex('vectors', 'idx_vectors_user', 'openmemory_vectors_user_idx'),
    },
    {
      id: 'waypoints.user_id',
      description: 'waypoints gains a user_id column',
      expect: [{ kind: 'column', table: 'waypoints', column: 'user_id', existingRowsNull: true }],
      sql: {
        sqlite: (t) => [`ALTER TABLE ${t.waypoints} ADD COLUMN user_id TEXT`],
        postgres: (t) => [`ALTER TABLE ${t.waypoints} ADD COLUMN user_id TEXT`],
      },      down: dropColumn('waypoints', 'user_id'),
    },
    {
      id: 'waypoints.key',
      description: 'waypoints keyed by (src_id, user_id) instead of src_id',
      expect: [
        { kind: 'key', table: 'waypoints', columns: ['src_id', 'user_id'] },
        // SQLite rebuilds the table, and its indexes go with the old one.
        sqliteIndex('waypoints', 'idx_waypoints_src', ['src_id']),
        sqliteIndex('waypoints', 'idx_waypoints_dst', ['dst_id']),
      ],
      // SQLite cannot change a primary key in place: the table is rebuilt
      // (copying user_id, which the previous change added, so a hand-added
      // user_id keeps its values). The whole version runs in one transaction,
      // so a crash anywhere leaves the old table; waypoints_new can only be
      // left over by someone else's non-transactional script, and since
      // waypoints itself is still whole then, it is dropped and rebuilt.
      scratchTables: { sqlite: ['waypoints_new'] },
      sql: {
        sqlite: (t) => {
          const rebuilt = new TableName(t.waypoints.schema, 'waypoints_new');
          return [
            `DROP TABLE IF EXISTS ${rebuilt}`,
            `CREATE TABLE ${rebuilt} (src_id TEXT, dst_id TEXT NOT NULL, user_id TEXT, weight REAL NOT NULL, created_at INTEGER, updated_at INTEGER, PRIMARY KEY(src_id, user_id))`,
            `INSERT INTO ${rebuilt} (src_id, dst_id, user_id, weight, created_at, updated_at) SELECT src_id, dst_id, user_id, weight, created_at, updated_at FROM ${t.waypoints}`,
            `DROP TABLE ${t.waypoints}`,
            `ALTER TABLE ${rebuilt} RENAME TO ${quoteIdent(t.waypoints.name)}`,
            `CREATE INDEX idx_waypoints_src ON ${t.waypoints}(src_id)`,
            `CREATE INDEX idx_waypoints_dst ON ${t.waypoints}(dst_id)`,
          ];
        },
        // The seed's `ADD PRIMARY KEY (src_id, user_id)` cannot work on
        // PostgreSQL once rows exist: primary-key columns are NOT NULL and
        // existing rows keep user_id NULL (the system user). The same key is
        // made a UNIQUE NULLS NOT DISTINCT constraint (PostgreSQL 15+), which
        // OpenMemory's `ON CONFLICT (src_id, user_id)` upserts use as well.
        // Both drops are IF EXISTS so a half-done swap finishes either way.
        postgres: (t) => {
          const key = quoteIdent(`${t.waypoints.name}_src_id_user_id_key`);
          return [
            `ALTER TABLE ${t.waypoints} DROP CONSTRAINT IF EXISTS ${quoteIdent(`${t.waypoints.name}_pkey`)}`,
            `ALTER TABLE ${t.waypoints} DROP CONSTRAINT IF EXISTS ${key}`,
            `ALTER TABLE ${t.waypoints} ADD CONSTRAINT ${key} UNIQUE NULLS NOT DISTINCT (src_id, user_id)`,
          ];
        },
      },      // Back to one waypoint per src_id, user_id kept as a plain column (its
      // own change drops it next). Refused while two rows share a src_id.
      down: {
        restoresKey: { table: 'waypoints', columns: ['src_id'] },
        sql: {
          sqlite: (t) => {
            const rebuilt = new TableName(t.waypoints.schema, 'waypoints_old_key');
            return [
              `DROP TABLE IF EXISTS ${rebuilt}`,
              `CREATE TABLE ${rebuilt} (src_id TEXT PRIMARY KEY, dst_id TEXT NOT NULL, user_id TEXT, weight REAL NOT NULL, created_at INTEGER, updated_at INTEGER)`,
              `INSERT INTO ${rebuilt} (src_id, dst_id, user_id, weight, created_at, updated_at) SELECT src_id, dst_id, user_id, weight, created_at, updated_at FROM ${t.waypoints}`,
              `DROP TABLE ${t.waypoints}`,
              `ALTER TABLE ${rebuilt} RENAME TO ${quoteIdent(t.waypoints.name)}`,
              `CREATE INDEX idx_waypoints_src ON ${t.waypoints}(src_id)`,
              `CREATE INDEX idx_waypoints_dst ON ${t.waypoints}(dst_id)`,
            ];
          },
          postgres: (t) => [
            `ALTER TABLE ${t.waypoints} DROP CONSTRAINT IF EXISTS ${quoteIdent(`${t.waypoints.name}_src_id_user_id_key`)}`,
            `ALTER TABLE ${t.waypoints} ADD CONSTRAINT ${quoteIdent(`${t.waypoints.name}_pkey`)} PRIMARY KEY (src_id)`,
          ],
        },
      },
    },
    {
      id: 'waypoints.user_id.index',
      description: 'index on waypoints(user_id)',
      expect: [index('waypoints', 'idx_waypoints_user', 'openmemory_waypoints_user_idx', ['user_id'])],
      sql: {
        sqlite: (t) => [`CREATE INDEX idx_waypoints_user ON ${t.waypoints}(user_id)`],
        postgres: (t) => [`CREATE INDEX openmemory_waypoints_user_idx ON ${t.waypoints}(user_id)`],
      },      down: dropIndex('waypoints', 'idx_waypoints_user', 'openmemory_waypoints_user_idx'),
    },
    {
      id: 'users',
      description: 'users table (per-user summaries and reflection counts)',
      expect: [
        { kind: 'table', table: 'users', columns: ['user_id', 'summary', 'reflection_count', 'created_at', 'updated_at'] },
        { kind: 'key', table: 'users', columns: ['user_id'] },
      ],
      sql: {
        sqlite: (t) => [
          `CREATE TABLE ${t.users} (user_id TEXT PRIMARY KEY, summary TEXT, reflection_count INTEGER DEFAULT 0, created_at INTEGER, updated_at INTEGER)`,
        ],
        postgres: (t) => [
          `CREATE TABLE ${t.users} (user_id TEXT PRIMARY KEY, summary TEXT, reflection_count INTEGER DEFAULT 0, created_at BIGINT, updated_at BIGINT)`,
        ],
      },      down: dropTableIfEmpty('users'),
    },
    {
      id: 'stats',
      description: 'stats table (maintenance operation log)',
      expect: [
        { kind: 'table', table: 'stats', columns: ['id', 'type', 'count', 'ts'] },
        { kind: 'key', table: 'stats', columns: ['id'] },
      ],
      sql: {
        sqlite: (t) => [
          `CREATE TABLE ${t.stats} (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, count INTEGER DEFAULT 1, ts INTEGER NOT NULL)`,
        ],
        postgres: (t) => [
          `CREATE TABLE ${t.stats} (id SERIAL PRIMARY KEY, type TEXT NOT NULL, count INTEGER DEFAULT 1, ts BIGINT NOT NULL)`,
        ],
      },      down: dropTableIfEmpty('stats'),
    },
    {
      id: 'stats.ts.index',
      description: 'index on stats(ts)',
      expect: [index('stats', 'idx_stats_ts', 'openmemory_stats_ts_idx', ['ts'])],
      sql: {
        sqlite: (t) => [`CREATE INDEX idx_stats_ts ON ${t.stats}(ts)`],
        postgres: (t) => [`CREATE INDEX openmemory_stats_ts_idx ON ${t.stats}(ts)`],
      },      down: dropIndex('stats', 'idx_stats_ts', 'openmemory_stats_ts_idx'),
    },
    {
      id: 'stats.type.index',
      description: 'index on stats(type)',
      expect: [index('stats', 'idx_stats_type', 'openmemory_stats_type_idx', ['type'])],
      sql: {
        sqlite: (t) => [`CREATE INDEX idx_stats_type ON ${t.stats}(type)`],
        postgres: (t) => [`CREATE INDEX openmemory_stats_type_idx ON ${t.stats}(type)`],
      },      down: dropIndex('stats', 'idx_stats_type', 'openmemory_stats_type_idx'),
    },
  ],
};

/** Every known version, oldest first. */
export const VERSIONS: readonly Version[] = [v1_2_0];

export function knownVersionIds(): string[] {
  return VERSIONS.map((v) => v.id);
}

export function findVersion(id: string): Version | undefined {
  return VERSIONS.find((v) => v.id === id);
}

/** The versions up to and including `target`, oldest first; undefined when `target` is unknown. */
export function versionsUpTo(target: string): Version[] | undefined {
  const end = VERSIONS.findIndex((v) => v.id === target);
  return end === -1 ? undefined : VERSIONS.slice(0, end + 1);
}

/** The expectations of a change that apply on one engine. */
export function expectationsFor(change: Change, engine: Engine): Expectation[] {
  return change.expect.filter((e) => e.only === undefined || e.only === engine);
}

/** The tables a version's changes read, alter or create. */
export function tablesTouchedBy(versions: Version[]): TableRole[] {
  const roles = new Set<TableRole>(['schemaVersion']);
  for (const change of versions.flatMap((v) => v.changes)) for (const e of change.expect) roles.add(e.table);
  return TABLE_ROLES.filter((role) => roles.has(role));
}

/**
 * SQL that records a version as applied. The timestamp is taken by the
 * database at commit time so the statement a dry run shows is exactly the one run.
 */
export function recordVersionSql(engine: Engine, t: Tables, version: Version): string[] {
  const create =
    engine === 'sqlite'
      ? `CREATE TABLE IF NOT EXISTS ${t.schemaVersion} (version TEXT PRIMARY KEY, applied_at INTEGER)`
      : `CREATE TABLE IF NOT EXISTS ${t.schemaVersion} (version TEXT PRIMARY KEY, applied_at BIGINT)`;
  const now =
    engine === 'sqlite'
      ? `CAST(unixepoch('subsec') * 1000 AS INTEGER)`
      : `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`;
  return [create, `INSERT INTO ${t.schemaVersion} (version, applied_at) VALUES (${quoteLiteral(version.id)}, ${now})`];
}

/**
 * SQL that removes a version's schema_version row again; the caller drops
 * the table when that leaves it empty (this run created it then).
 */
export function unrecordVersionSql(t: Tables, version: Version): string[] {
  return [`DELETE FROM ${t.schemaVersion} WHERE version = ${quoteLiteral(version.id)}`];
}

function dropColumn(table: TableRole, column: string): Down {
  const sql = (t: Tables) => [`ALTER TABLE ${t[table]} DROP COLUMN ${quoteIdent(column)}`];
  return { sql: { sqlite: sql, postgres: sql } };
}

/** SQLite index names are global to the file; PostgreSQL's live in the table's schema. */
function dropIndex(table: TableRole, sqlite: string, postgres: string): Down {
  return {
    sql: {
      sqlite: () => [`DROP INDEX IF EXISTS ${quoteIdent(sqlite)}`],
      postgres: (t) => [`DROP INDEX IF EXISTS ${new TableName(t[table].schema, postgres)}`],
    },
  };
}

function dropTableIfEmpty(table: TableRole): Down {
  const sql = (t: Tables) => [`DROP TABLE ${t[table]}`];
  return { sql: { sqlite: sql, postgres: sql }, dropsTableIfEmpty: table };
}

function index(table: TableRole, sqlite: string, postgres: string, columns: string[]): Expectation {
  return { kind: 'index', table, name: { sqlite, postgres }, columns };
}

function sqliteIndex(table: TableRole, name: string, columns: string[]): Expectation {
  return { kind: 'index', table, name: { sqlite: name, postgres: name }, columns, only: 'sqlite' };
}
