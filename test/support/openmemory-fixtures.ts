/**
 * OpenMemory v1.1 databases with data, on SQLite and PostgreSQL, created
 * with the DDL OpenMemory v1.1 itself runs; a hand-made partial v1.2 state;
 * and ways for tests to look at a database exactly (file hash, every row).
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client } from 'pg';
import { generateMcpStore } from '../../scripts/generate-mcp-store';

export const V11_COUNTS = { memories: 24, vectors: 48, waypoints: 20, embedLogs: 5 };

const SECTORS = ['semantic', 'episodic'];

/** Deterministic uuids: PostgreSQL's memories.id and vectors.id are uuid. */
function memoryId(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

function vectorBytes(i: number, sector: number): Buffer {
  return Buffer.from(new Float32Array(Array.from({ length: 8 }, (_, d) => Math.sin(i * 8 + d + sector))).buffer);
}

interface Rows {
  memories: unknown[][];
  vectors: unknown[][];
  waypoints: unknown[][];
  embedLogs: unknown[][];
}

function v11Rows(): Rows {
  const n = V11_COUNTS.memories;
  const t0 = 1_700_000_000_000;
  const memories = Array.from({ length: n }, (_, i) => [
    memoryId(i), 0, `memory ${i}: the user prefers ${['tea', 'coffee', 'water'][i % 3]}`, `simhash${i}`, SECTORS[i % 2],
    JSON.stringify(['t' + (i % 4)]), JSON.stringify({ n: i }), t0 + i, t0 + i, t0 + i, 0.5 + i / 100, 0.01, 1, 8,
    vectorBytes(i, 9), null, i % 5 === 0 ? 0.25 : 0,
  ]);
  const vectors = Array.from({ length: n }, (_, i) => SECTORS.map((s, si) => [memoryId(i), s, vectorBytes(i, si), 8])).flat();
  const waypoints = Array.from({ length: V11_COUNTS.waypoints }, (_, i) => [memoryId(i), memoryId((i + 1) % n), 0.5 + i / 50, t0 + i, t0 + i]);
  const embedLogs = Array.from({ length: V11_COUNTS.embedLogs }, (_, i) => [`log${i}`, 'synthetic', i === 4 ? 'failed' : 'completed', t0 + i, i === 4 ? 'timeout' : null]);
  return { memories, vectors, waypoints, embedLogs };
}

// --- SQLite -----------------------------------------------------------------

/** OpenMemory v1.1's SQLite DDL (backend/src/core/db.ts before v1.2). */
const V11_SQLITE_DDL = `
  create table memories(id text primary key,segment integer default 0,content text not null,simhash text,primary_sector text not null,tags text,meta text,created_at integer,updated_at integer,last_seen_at integer,salience real,decay_lambda real,version integer default 1,mean_dim integer,mean_vec blob,compressed_vec blob,feedback_score real default 0);
  create table vectors(id text not null,sector text not null,v blob not null,dim integer not null,primary key(id,sector));
  create table waypoints(src_id text primary key,dst_id text not null,weight real not null,created_at integer,updated_at integer);
  create table embed_logs(id text primary key,model text,status text,ts integer,err text);
  create index idx_memories_sector on memories(primary_sector);
  create index idx_memories_segment on memories(segment);
  create index idx_memories_simhash on memories(simhash);
  create index idx_memories_ts on memories(last_seen_at);
  create index idx_waypoints_src on waypoints(src_id);
  create index idx_waypoints_dst on waypoints(dst_id);
`;

/** A v1.1 OpenMemory SQLite file with data, in WAL mode as OpenMemory keeps it, closed. */
export function createSqliteV11(path: string): void {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(V11_SQLITE_DDL);
    const rows = v11Rows();
    const insert = db.transaction(() => {
      insertAll(db, 'memories', 17, rows.memories);
      insertAll(db, 'vectors', 4, rows.vectors);
      insertAll(db, 'waypoints', 5, rows.waypoints);
      insertAll(db, 'embed_logs', 5, rows.embedLogs);
    });
    insert();
  } finally {
    db.close();
  }
}

function insertAll(db: Database.Database, table: string, width: number, rows: unknown[][]): void {
  const statement = db.prepare(`insert into ${table} values (${Array(width).fill('?').join(',')})`);
  for (const row of rows) statement.run(...row);
}

/** An mcp-memory-service SQLite-vec store (memories + vec0 memory_embeddings): a database that is not OpenMemory. */
export function createSqliteVecFile(path: string): void {
  generateMcpStore(path, { count: 5, dimensions: 4 });
}

/** Runs statements one by one, each committed on its own — as a script without a transaction would. */
export function execSqlite(path: string, statements: string[]): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    for (const sql of statements) db.exec(sql);
  } finally {
    db.close();
  }
}

/** What a person halfway through the seed's manual SQLite steps leaves behind. */
export const HAND_MADE_PARTIAL_SQLITE = [
  'ALTER TABLE memories ADD COLUMN user_id TEXT',
  'CREATE INDEX idx_memories_user ON memories(user_id)',
  'ALTER TABLE vectors ADD COLUMN user_id TEXT',
  'CREATE TABLE users (user_id TEXT PRIMARY KEY, summary TEXT, reflection_count INTEGER DEFAULT 0, created_at INTEGER, updated_at INTEGER)',
];

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function sqliteRows(path: string, table: string): Record<string, unknown>[] {
  const db = new Database(path, { fileMustExist: true });
  try {
    return sortRows(db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[]);
  } finally {
    db.close();
  }
}

// --- PostgreSQL -------------------------------------------------------------

export interface PgNames {
  schema: string;
  /** OM_PG_TABLE */
  memories: string;
}

/** OpenMemory v1.1's PostgreSQL DDL, in `schema`, with `memories` as OM_PG_TABLE. */
function v11PostgresDdl({ schema, memories }: PgNames): string {
  const s = `"${schema}"`;
  return `
    create schema ${s};
    create table ${s}."${memories}"(id uuid primary key,segment integer default 0,content text not null,simhash text,primary_sector text not null,tags text,meta text,created_at bigint,updated_at bigint,last_seen_at bigint,salience double precision,decay_lambda double precision,version integer default 1,mean_dim integer,mean_vec bytea,compressed_vec bytea,feedback_score double precision default 0);
    create table ${s}.openmemory_vectors(id uuid,sector text,v bytea,dim integer not null,primary key(id,sector));
    create table ${s}.openmemory_waypoints(src_id text primary key,dst_id text not null,weight double precision not null,created_at bigint,updated_at bigint);
    create table ${s}.openmemory_embed_logs(id text primary key,model text,status text,ts bigint,err text);
    create index openmemory_memories_sector_idx on ${s}."${memories}"(primary_sector);
    create index openmemory_memories_segment_idx on ${s}."${memories}"(segment);
    create index openmemory_memories_simhash_idx on ${s}."${memories}"(simhash);
  `;
}

export async function withPg<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A v1.1 OpenMemory schema with data. */
export async function createPostgresV11(url: string, names: PgNames): Promise<void> {
  const rows = v11Rows();
  const s = `"${names.schema}"`;
  await withPg(url, async (client) => {
    await client.query(v11PostgresDdl(names));
    await insertAllPg(client, `${s}."${names.memories}"`, rows.memories);
    await insertAllPg(client, `${s}.openmemory_vectors`, rows.vectors);
    await insertAllPg(client, `${s}.openmemory_waypoints`, rows.waypoints);
    await insertAllPg(client, `${s}.openmemory_embed_logs`, rows.embedLogs);
  });
}

async function insertAllPg(client: Client, table: string, rows: unknown[][]): Promise<void> {
  for (const row of rows) {
    await client.query(`insert into ${table} values (${row.map((_, i) => `$${i + 1}`).join(',')})`, row);
  }
}

/** Runs statements one by one in autocommit, stopping at the first that fails (returned, with its error). */
export async function execPostgres(url: string, statements: string[]): Promise<{ failed: string; error: string } | null> {
  return withPg(url, async (client) => {
    for (const sql of statements) {
      try {
        await client.query(sql);
      } catch (err) {
        return { failed: sql, error: (err as Error).message };
      }
    }
    return null;
  });
}

export function handMadePartialPostgres({ schema, memories }: PgNames): string[] {
  const s = `"${schema}"`;
  return [
    `ALTER TABLE ${s}."${memories}" ADD COLUMN user_id TEXT`,
    `CREATE INDEX openmemory_memories_user_idx ON ${s}."${memories}"(user_id)`,
    `ALTER TABLE ${s}.openmemory_vectors ADD COLUMN user_id TEXT`,
    `CREATE TABLE ${s}.openmemory_users (user_id TEXT PRIMARY KEY, summary TEXT, reflection_count INTEGER DEFAULT 0, created_at BIGINT, updated_at BIGINT)`,
  ];
}

/** The seed's manual PostgreSQL migration, verbatim but for names. */
export function seedPostgresScript({ schema, memories }: PgNames): string[] {
  const s = `"${schema}"`;
  return [
    `ALTER TABLE ${s}."${memories}" ADD COLUMN user_id TEXT`,
    `CREATE INDEX openmemory_memories_user_idx ON ${s}."${memories}"(user_id)`,
    `ALTER TABLE ${s}.openmemory_vectors ADD COLUMN user_id TEXT`,
    `CREATE INDEX openmemory_vectors_user_idx ON ${s}.openmemory_vectors(user_id)`,
    `ALTER TABLE ${s}.openmemory_waypoints ADD COLUMN user_id TEXT`,
    `ALTER TABLE ${s}.openmemory_waypoints DROP CONSTRAINT openmemory_waypoints_pkey`,
    `ALTER TABLE ${s}.openmemory_waypoints ADD PRIMARY KEY (src_id, user_id)`,
    `CREATE INDEX openmemory_waypoints_user_idx ON ${s}.openmemory_waypoints(user_id)`,
    `CREATE TABLE ${s}.openmemory_users (user_id TEXT PRIMARY KEY, summary TEXT, reflection_count INTEGER DEFAULT 0, created_at BIGINT, updated_at BIGINT)`,
  ];
}

export async function pgRows(url: string, schema: string, table: string): Promise<Record<string, unknown>[]> {
  return withPg(url, async (client) => {
    const { rows } = await client.query(`SELECT * FROM "${schema}"."${table}"`);
    return sortRows(rows);
  });
}

/**
 * Everything that makes up a schema: each table's columns (type, nullability,
 * default), constraints, indexes, and every row.
 */
export async function pgSchemaState(url: string, schema: string): Promise<Record<string, unknown>> {
  return withPg(url, async (client) => {
    const { rows: tables } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1`,
      [schema],
    );
    const state: Record<string, unknown> = {};
    for (const { name } of tables) {
      const table = `"${schema}"."${name}"`;
      const columns = await client.query(
        `SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [table],
      );
      const constraints = await client.query(
        `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype <> 'n' ORDER BY 1`,
        [table],
      );
      const indexes = await client.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY 1`, [schema, name]);
      const rows = await client.query(`SELECT to_jsonb(t) AS row FROM ${table} t ORDER BY t::text`);
      state[name] = { columns: columns.rows, constraints: constraints.rows, indexes: indexes.rows, rows: rows.rows.map((r) => r.row) };
    }
    return state;
  });
}

function sortRows(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  const key = (r: Record<string, unknown>) => JSON.stringify(r);
  return [...rows].sort((a, b) => key(a).localeCompare(key(b)));
}

// --- Live writes -------------------------------------------------------------

/** One OpenMemory memories table, written through its own connection with the columns v1.1 and v1.2 share. */
export interface MemoriesConnection {
  insert(id: string, content: string): Promise<void>;
  update(id: string, content: string): Promise<void>;
  remove(id: string): Promise<void>;
  /** Every memory, id → content. */
  contents(): Promise<Map<string, string>>;
  close(): Promise<void>;
}

/**
 * An SQLite connection that never blocks the event loop (the worker may run
 * in this process): busy_timeout 0, and a write that meets the lock is
 * retried 10 ms later until it lands.
 */
export function sqliteMemories(path: string): MemoriesConnection {
  const db = new Database(path, { fileMustExist: true, timeout: 0 });
  const write = async (sql: string, ...params: unknown[]) => {
    for (;;) {
      try {
        db.prepare(sql).run(...params);
        return;
      } catch (err) {
        if (!String((err as { code?: string }).code).startsWith('SQLITE_BUSY')) throw err;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  return {
    insert: (id, content) => write(`INSERT INTO memories (id, content, primary_sector, created_at) VALUES (?, ?, 'semantic', 1)`, id, content),
    update: (id, content) => write(`UPDATE memories SET content = ? WHERE id = ?`, content, id),
    remove: (id) => write(`DELETE FROM memories WHERE id = ?`, id),
    async contents() {
      const rows = db.prepare('SELECT id, content FROM memories').all() as { id: string; content: string }[];
      return new Map(rows.map((r) => [r.id, r.content]));
    },
    async close() {
      db.close();
    },
  };
}

/** A PostgreSQL connection of its own: a write that meets a lock waits for it. */
export async function pgMemories(url: string, { schema, memories }: PgNames): Promise<MemoriesConnection> {
  const client = new Client({ connectionString: url });
  await client.connect();
  const table = `"${schema}"."${memories}"`;
  return {
    insert: async (id, content) => {
      await client.query(`INSERT INTO ${table} (id, content, primary_sector, created_at) VALUES ($1, $2, 'semantic', 1)`, [id, content]);
    },
    update: async (id, content) => {
      await client.query(`UPDATE ${table} SET content = $1 WHERE id = $2`, [content, id]);
    },
    remove: async (id) => {
      await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
    },
    async contents() {
      const { rows } = await client.query<{ id: string; content: string }>(`SELECT id, content FROM ${table}`);
      return new Map(rows.map((r) => [r.id, r.content]));
    },
    close: () => client.end(),
  };
}

export interface MemoryWriter {
  counts(): { insert: number; update: number; delete: number };
  /** Stops after the write in flight; returns what the table must hold by the writer's account, id → content. */
  stop(): Promise<Map<string, string>>;
}

/** Deterministic uuids the writer inserts, apart from the fixtures' ones. */
export function writtenId(n: number): string {
  return `00000000-0000-4000-9000-${n.toString(16).padStart(12, '0')}`;
}

/**
 * Keeps writing — insert, update (of any memory), delete (of one of its own)
 * in turn, every `everyMs` — keeping its own account of what the table holds.
 * A write is counted once its statement returned; any failure ends the test.
 */
export async function startMemoryWriter(connection: MemoriesConnection, everyMs = 15): Promise<MemoryWriter> {
  const expected = await connection.contents();
  const counts = { insert: 0, update: 0, delete: 0 };
  const mine: string[] = [];
  let stopped = false;
  let failure: unknown = null;
  const loop = (async () => {
    for (let n = 0; !stopped; n++) {
      if (n % 3 === 0 || (n % 3 === 2 && mine.length === 0)) {
        const id = writtenId(n);
        await connection.insert(id, `live write ${n}`);
        expected.set(id, `live write ${n}`);
        mine.push(id);
        counts.insert++;
      } else if (n % 3 === 1) {
        const ids = [...expected.keys()];
        const id = ids[(n * 7) % ids.length];
        await connection.update(id, `live update ${n}`);
        expected.set(id, `live update ${n}`);
        counts.update++;
      } else {
        const id = mine.shift()!;
        await connection.remove(id);
        expected.delete(id);
        counts.delete++;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })().catch((err) => {
    failure = err;
  });
  return {
    counts: () => ({ ...counts }),
    async stop() {
      stopped = true;
      await loop;
      if (failure) throw failure;
      return expected;
    },
  };
}
