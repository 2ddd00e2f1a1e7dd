/**
 * mcp-memory-service's SQLite-vec store: `memories` rows joined by rowid to
 * the `memory_embeddings` vec0 table, read by primary key. Read-only, except
 * `writeBackPoints`, which only a rollback uses to carry post-cutover writes back.
 */
import { ApplicationFailure } from '@temporalio/common';
import Database from 'better-sqlite3';
import { hash } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as sqliteVec from 'sqlite-vec';
import type { CopyRange, IdRange } from '../../workflows/messages';
import type { DigestedPoint, MemoryPoint, Page, PointSource } from './contract';
import { storedDigest } from './pgvector-digest';
import type { PointOrderJob, VectorChunks } from './sqlite-point-order';

export type SqliteDb = Database.Database;

/** Opens a database read-only with the sqlite-vec extension loaded. */
export function openReadOnly(path: string): SqliteDb {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  sqliteVec.load(db);
  return db;
}

/** Opens the source for a rollback's write-back; waits for the live service's write lock rather than failing. */
export function openWritable(path: string): SqliteDb {
  const db = new Database(path, { fileMustExist: true, timeout: 30_000 });
  sqliteVec.load(db);
  return db;
}

/**
 * How far a read of the source got: the highest row id and an `updated_at`
 * from which every later change is read again. Rows with a higher id or an
 * `updated_at` at or after `since` are the changes a catch-up copies.
 */
export interface Watermark {
  maxId: number;
  since: number;
}

/**
 * Re-reading a minute of changes is cheap; missing one is not. The slack
 * covers a service clock a little behind the worker's and rows whose
 * `updated_at` lies in the future.
 */
const CLOCK_SLACK_S = 60;

/** The watermark of what `db` shows now (call inside the read transaction that the catch-up reads in). */
export function watermarkOf(db: SqliteDb): Watermark {
  const row = db.prepare('SELECT coalesce(max(id), 0) AS maxId, coalesce(max(updated_at), 0) AS maxUpdated FROM memories').get() as {
    maxId: number;
    maxUpdated: number;
  };
  return { maxId: row.maxId, since: Math.min(row.maxUpdated, Date.now() / 1000) - CLOCK_SLACK_S };
}

/** Point ids of the rows a copy includes (what the target must hold once caught up), in point-id order. */
export function sourcePointIdsInOrder(db: SqliteDb, includeDeleted: boolean): IterableIterator<string> {
  // On the caller's connection, so the ids are its snapshot's; SQLite's sorter spills to disk rather than growing with the store.
  addPointIdFunction(db);
  const ids = db.prepare(`SELECT memshift_point_id(m.content_hash) FROM memories m WHERE ${liveRowsFilter(includeDeleted)} ORDER BY 1`);
  return ids.pluck().iterate() as IterableIterator<string>;
}

/** `memshift_point_id(content_hash)`: a row's point id, in SQL. */
export function addPointIdFunction(db: SqliteDb): void {
  db.function('memshift_point_id', { deterministic: true }, (hash: unknown) => pointIdForContentHash(String(hash)));
}

export interface McpStoreShape {
  /** Columns of `memories` that mcp-memory-service needs and this file lacks. */
  missing: string[];
  dimensions: number | null;
}

const REQUIRED_MEMORY_COLUMNS = [
  'id', 'content_hash', 'content', 'tags', 'memory_type', 'metadata',
  'created_at', 'updated_at', 'created_at_iso', 'updated_at_iso', 'deleted_at',
];

/** What makes a file an mcp-memory-service store, and its embedding size. */
export function inspectMcpStore(db: SqliteDb): McpStoreShape {
  const columns = new Set(
    (db.prepare("SELECT name FROM pragma_table_info('memories')").all() as { name: string }[]).map((c) => c.name),
  );
  const missing = columns.size === 0 ? ['table memories'] : REQUIRED_MEMORY_COLUMNS.filter((c) => !columns.has(c)).map((c) => `memories.${c}`);
  const vecTable = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'memory_embeddings'").get() as { sql: string } | undefined;
  const dims = vecTable?.sql.match(/using\s+vec0\s*\([^)]*\bfloat\s*\[\s*(\d+)\s*\]/i);
  if (!dims) missing.push('vec0 table memory_embeddings(content_embedding FLOAT[dim])');
  return { missing, dimensions: dims ? Number(dims[1]) : null };
}

/** Stable point id for a memory: the same content hash always maps to the same UUID. */
export function pointIdForContentHash(contentHash: string): string {
  // One-shot hash: the same digest as createHash, at a third of the cost (ids are hashed for every row a validation range scans).
  const h = hash('sha1', `memshift:mcp-memory:${contentHash}`, 'hex');
  // Shaped as a UUID v5 (name-based, SHA-1) so Qdrant and PostgreSQL accept it.
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface MemoryRow {
  id: number;
  content_hash: string;
  content: string;
  tags: string | null;
  memory_type: string | null;
  metadata: string | null;
  created_at: number | null;
  updated_at: number | null;
  created_at_iso: string | null;
  updated_at_iso: string | null;
  deleted_at: number | null;
  /** A Buffer, or a Uint8Array when the row came from another thread. */
  embedding: Uint8Array | null;
  /** Set by queries that already computed it (streamByPointId). */
  point_id?: string;
}

export function parseTags(tags: string | null): string[] {
  return (tags ?? '').split(',').map((t) => t.trim()).filter(Boolean);
}

function parseMetadata(metadata: string | null): unknown {
  if (metadata === null || metadata === '') return null;
  try {
    return JSON.parse(metadata);
  } catch {
    return metadata; // kept verbatim rather than lost
  }
}

/** float32 blob → numbers; a plain loop, several times faster than Array.from on the hot read path. */
function floatsOf(blob: Uint8Array): number[] {
  const floats = new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
  const vector = new Array<number>(floats.length);
  for (let i = 0; i < floats.length; i++) vector[i] = floats[i];
  return vector;
}

export function toMemoryPoint(row: MemoryRow): MemoryPoint {
  const id = row.point_id ?? pointIdForContentHash(row.content_hash);
  return { id, vector: row.embedding ? floatsOf(row.embedding) : [], payload: payloadOf(row) };
}

/** The payload a row's point carries: its columns, tags as a list, metadata parsed. */
function payloadOf(row: Omit<MemoryRow, 'embedding'>): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    content: row.content,
    content_hash: row.content_hash,
    tags: parseTags(row.tags),
    memory_type: row.memory_type,
    metadata: parseMetadata(row.metadata),
    created_at: row.created_at,
    updated_at: row.updated_at,
    created_at_iso: row.created_at_iso,
    updated_at_iso: row.updated_at_iso,
    source_id: row.id,
  };
  if (row.deleted_at !== null) payload.deleted_at = row.deleted_at;
  return payload;
}

/** Threads sorting one range's rows by point id (streamByPointId): one per core here. */
const SORTING_THREADS = 2;

/** How a sorting thread's statement reads a row's embedding: its join, and what memshift_stored_digest takes for the vector. */
interface EmbeddingsRead {
  join: string;
  vectorArgs: string;
  chunks?: VectorChunks;
}

const VEC0_EMBEDDINGS: EmbeddingsRead = { join: 'LEFT JOIN memory_embeddings e ON e.rowid = ranked.id', vectorArgs: 'e.content_embedding' };
const CHUNK_EMBEDDINGS = { join: 'LEFT JOIN memory_embeddings_rowids r ON r.rowid = ranked.id', vectorArgs: 'r.chunk_id, r.chunk_offset' };

/**
 * sqlite-vec 0.1 keeps a vec0 table's vectors in tables of its own:
 * `_rowids` places each row at (chunk_id, chunk_offset), and
 * `_vector_chunks00` holds each chunk's float32 vectors end to end. vec0
 * answers every read by rowid by opening the chunk's blob afresh, about
 * 11 µs a row and half the source's side of a pass over every row; reading
 * whole chunks costs about a quarter of that. Only this layout, as its
 * creator recorded it, is read so.
 */
export function vectorChunksOf(db: SqliteDb): VectorChunks | undefined {
  const { dimensions } = inspectMcpStore(db);
  const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'memory_embeddings_%'").pluck().all());
  const known = ['info', 'chunks', 'rowids', 'vector_chunks00'].every((suffix) => tables.has(`memory_embeddings_${suffix}`));
  if (!dimensions || !known) return undefined;
  const version = db.prepare("SELECT value FROM memory_embeddings_info WHERE key = 'CREATE_VERSION'").pluck().get();
  if (typeof version !== 'string' || !version.startsWith('v0.1.')) return undefined;
  const chunk = db
    .prepare('SELECT c.size, length(v.vectors) AS bytes FROM memory_embeddings_chunks c JOIN memory_embeddings_vector_chunks00 v ON v.rowid = c.chunk_id LIMIT 1')
    .get() as { size: number; bytes: number } | undefined;
  const vectorBytes = 4 * dimensions;
  if (chunk && chunk.bytes !== chunk.size * vectorBytes) return undefined;
  return { table: 'memory_embeddings_vector_chunks00', vectorBytes };
}

/**
 * Readers of rows' vectors from sqlite-vec's chunks (vectorChunksOf) by
 * chunk and slot, through `db`: make one per snapshot. A reader keeps the
 * last chunk it read, since rows read in primary-key order fill the chunks
 * in that order; it returns undefined when the chunk does not hold the slot.
 */
export function chunkVectorReaders(db: SqliteDb, { table, vectorBytes }: VectorChunks): () => (chunkId: number, offset: number) => Buffer | undefined {
  const chunkAt = db.prepare(`SELECT vectors FROM "${table}" WHERE rowid = ?`).pluck();
  return () => {
    let lastChunkId: number | null = null;
    let vectors: Buffer | undefined;
    return (chunkId, offset) => {
      if (chunkId !== lastChunkId) [lastChunkId, vectors] = [chunkId, chunkAt.get(chunkId) as Buffer | undefined];
      const at = offset * vectorBytes;
      return vectors && vectors.length >= at + vectorBytes ? vectors.subarray(at, at + vectorBytes) : undefined;
    };
  };
}

/** A sorting thread's rows, a page at a time, the next page asked for as soon as one arrives. */
async function* sortedPages<Row>(thread: Worker, pageSize: number): AsyncGenerator<Row[]> {
  const nextPage = () => {
    const page = once(thread, 'message') as Promise<[Row[]]>;
    thread.postMessage('next');
    page.catch(() => undefined); // a page read ahead may fail before it is awaited; it fails there
    return page;
  };
  for (let page = nextPage(); ; ) {
    const [rows] = await page;
    if (rows.length === pageSize) page = nextPage();
    if (rows.length) yield rows;
    if (rows.length < pageSize) return;
  }
}

/** Streams of rows each sorted by point id (uuids of one shape: string order), merged into one, in pages of `pageSize`. */
async function* mergeByPointId<Row extends { point_id: string }>(streams: AsyncGenerator<Row[]>[], pageSize: number): AsyncGenerator<Row[]> {
  const heads = (await Promise.all(streams.map(async (stream) => ({ stream, rows: (await stream.next()).value ?? [], at: 0 })))).filter(
    (head) => head.rows.length > 0,
  );
  let page: Row[] = [];
  while (heads.length > 0) {
    let first = heads[0];
    for (const head of heads) if (head.rows[head.at].point_id < first.rows[first.at].point_id) first = head;
    page.push(first.rows[first.at++]);
    if (first.at === first.rows.length) {
      const next = await first.stream.next();
      if (next.done) heads.splice(heads.indexOf(first), 1);
      else [first.rows, first.at] = [next.value, 0];
    }
    if (page.length === pageSize) {
      yield page;
      page = [];
    }
  }
  if (page.length) yield page;
}

/** The columns of `memories` a point is made of, in the order memshift_stored_digest (sqlite-point-order.ts) takes them. */
const POINT_COLUMNS = 'm.id, m.content_hash, m.content, m.tags, m.memory_type, m.metadata, m.created_at, m.updated_at, m.created_at_iso, m.updated_at_iso, m.deleted_at';

/** storedDigest of the point a row makes, from POINT_COLUMNS' values and the embedding: what a pgvector target holds for it. */
export function storedDigestOfRow(...values: unknown[]): string {
  const [id, content_hash, content, tags, memory_type, metadata, created_at, updated_at, created_at_iso, updated_at_iso, deleted_at, embedding] = values as [
    number, string, string, string | null, string | null, string | null, number | null, number | null, string | null, string | null, number | null, Uint8Array | null,
  ];
  const payload = payloadOf({ id, content_hash, content, tags, memory_type, metadata, created_at, updated_at, created_at_iso, updated_at_iso, deleted_at });
  return storedDigest(payload, embedding ?? new Uint8Array());
}

/** Which rows a copy reads: soft-deleted ones only when the plan copies them. */
export function liveRowsFilter(includeDeleted: boolean): string {
  return includeDeleted ? '1 = 1' : 'm.deleted_at IS NULL';
}

const SELECT_MEMORIES = `SELECT ${POINT_COLUMNS}, e.content_embedding AS embedding FROM memories m LEFT JOIN memory_embeddings e ON e.rowid = m.id`;

/** A page of rows with where their vectors are (chunk_id null: no embedding); readPages fills `embedding` from the chunks. */
const SELECT_MEMORIES_BY_CHUNK = `SELECT ${POINT_COLUMNS}, r.chunk_id, r.chunk_offset FROM memories m LEFT JOIN memory_embeddings_rowids r ON r.rowid = m.id`;

type ChunkedRow = MemoryRow & { chunk_id: number | null; chunk_offset: number | null };

export class McpMemorySource implements PointSource {
  private readonly pageQuery: (...params: unknown[]) => MemoryRow[];
  private readonly countQuery: Database.Statement;
  private readonly params: number[];
  private readonly filter: string;
  private readonly snapshot: Watermark | null;
  private readonly chunks: VectorChunks | undefined;

  /** With `changedSince`, only rows added or updated since that watermark (a catch-up). */
  constructor(private readonly db: SqliteDb, includeDeleted: boolean, private readonly changedSince?: Watermark) {
    this.snapshot = changedSince ? watermarkOf(db) : null;
    const filter = `${liveRowsFilter(includeDeleted)}${changedSince ? ' AND (m.id > ? OR m.updated_at >= ?)' : ''}`;
    this.filter = filter;
    this.params = changedSince ? [changedSince.maxId, changedSince.since] : [];
    this.chunks = vectorChunksOf(db);
    this.pageQuery = this.readPages(`m.id > ? AND ${filter}`);
    this.countQuery = db.prepare(`SELECT count(*) AS n FROM memories m WHERE ${filter}`);
  }

  /**
   * Reads the rows matching `where` in primary-key order, up to a limit (the
   * last parameter), with their embeddings. Where sqlite-vec's layout is
   * known (vectorChunksOf), the vectors come from the few chunks a page
   * spans, each read once, instead of vec0 opening a blob per row (100k
   * memories read as points: 1.6–1.8 s instead of 2.1–2.3 s). The rows and their
   * chunks are read in one transaction, so both are the same snapshot while
   * the service writes.
   */
  private readPages(where: string): (...params: unknown[]) => MemoryRow[] {
    if (!this.chunks) {
      const rows = this.db.prepare(`${SELECT_MEMORIES} WHERE ${where} ORDER BY m.id LIMIT ?`);
      return (...params) => rows.all(...params) as MemoryRow[];
    }
    const rows = this.db.prepare(`${SELECT_MEMORIES_BY_CHUNK} WHERE ${where} ORDER BY m.id LIMIT ?`);
    const vectorReader = chunkVectorReaders(this.db, this.chunks);
    // Nested in a caller's read transaction (a catch-up's snapshot), this is a savepoint in it.
    return this.db.transaction((...params: unknown[]) => {
      const page = rows.all(...params) as ChunkedRow[];
      const vectorAt = vectorReader(); // this page's snapshot
      for (const row of page) {
        if (row.chunk_id === null) {
          row.embedding = null;
          continue;
        }
        const vector = vectorAt(row.chunk_id, row.chunk_offset!);
        if (!vector) {
          throw ApplicationFailure.nonRetryable(`Memory ${row.id}'s embedding is not where sqlite-vec's index places it (chunk ${row.chunk_id}); run PRAGMA integrity_check on the source.`, 'MalformedRow');
        }
        row.embedding = vector;
      }
      return page;
    });
  }

  async count(): Promise<number> {
    return (this.countQuery.get(...this.params) as { n: number }).n;
  }

  /**
   * The cursor is the last primary key read. A catch-up's cursor also names
   * its watermark and the source's state when the attempt began: a retried
   * catch-up that sees a changed source starts over, so rows changed between
   * attempts below the old cursor are not skipped.
   */
  async readPage(cursor: string | null, limit: number): Promise<Page> {
    const afterId = this.cursorId(cursor);
    const rows = this.pageQuery(afterId, ...this.params, limit);
    const next = rows.length < limit ? null : `${this.cursorPrefix()}${rows[rows.length - 1].id}`;
    return { points: rows.map(toMemoryPoint), next };
  }

  private cursorPrefix(): string {
    if (!this.changedSince) return '';
    // Since and this attempt's snapshot: a retry that sees a changed source starts over.
    const { maxId, since } = this.changedSince;
    return `${maxId}@${since}/${this.snapshot!.maxId}@${this.snapshot!.since}:`;
  }

  private cursorId(cursor: string | null): number {
    const prefix = this.cursorPrefix();
    if (cursor === null || !cursor.startsWith(prefix)) return -1;
    return Number(cursor.slice(prefix.length));
  }

  /**
   * Primary keys that split the rows into `parts` ranges of equal size (exact
   * quantiles: the key index answers each in one seek and a short scan), as
   * cursors: range i holds the rows after key i-1 up to key i.
   */
  async splitKeys(parts: number): Promise<string[]> {
    const rows = await this.count();
    const at = this.db.prepare(`SELECT m.id FROM memories m WHERE ${this.filter} ORDER BY m.id LIMIT 1 OFFSET ?`).pluck();
    const keys: string[] = [];
    for (let i = 1; i < parts && rows > 0; i++) {
      const key = String(at.get(...this.params, Math.floor((i * rows) / parts) - 1));
      if (key !== keys[keys.length - 1]) keys.push(key);
    }
    return keys;
  }

  /** The rows of one range (see splitKeys) as a source of their own; its cursors are the same primary keys. */
  range({ start, end }: CopyRange): PointSource {
    const bounded = `${this.filter} AND m.id <= ?`;
    const upTo = end === null ? Number.MAX_SAFE_INTEGER : Number(end);
    const from = start === null ? -1 : Number(start);
    const page = this.readPages(`m.id > ? AND ${bounded}`);
    const count = this.db.prepare(`SELECT count(*) AS n FROM memories m WHERE m.id > ? AND ${bounded}`).pluck();
    return {
      count: async () => count.get(from, ...this.params, upTo) as number,
      readPage: async (cursor, limit) => {
        const rows = page(cursor === null ? from : Number(cursor), ...this.params, upTo, limit);
        return { points: rows.map(toMemoryPoint), next: rows.length < limit ? null : String(rows[rows.length - 1].id) };
      },
      close: async () => {},
    };
  }

  /**
   * The rows whose point ids lie in `range`, in point-id order (the order
   * targets keep), a page at a time: for comparing every point against a
   * target side by side. Point ids are hashes of content hashes, so SQLite
   * sorts them once per range in a single statement — in worker threads
   * with their own connections (sqlite-point-order.ts), a page read ahead, so
   * the seconds of a large sort hold neither heartbeats nor the target's reads.
   */
  async *streamByPointId(range: IdRange, pageSize: number): AsyncGenerator<MemoryPoint[]> {
    const rows = this.inPointIdOrder<MemoryRow & { point_id: string }>(range, pageSize, `${POINT_COLUMNS}, e.content_embedding AS embedding`, VEC0_EMBEDDINGS);
    for await (const page of rows) yield page.map(toMemoryPoint);
  }

  /**
   * The same rows as digests of what a pgvector target stores for them
   * (stores/pgvector-digest.ts), made in the thread as SQLite reads each row:
   * the sort then carries 32 characters a row, not its embedding. Embeddings
   * come from sqlite-vec's chunks where their layout is known (vectorChunksOf);
   * a digest only nominates a point for a second look, and `pointAt` reads it
   * again through vec0 itself.
   */
  async *streamDigestsByPointId(range: IdRange, pageSize: number): AsyncGenerator<DigestedPoint[]> {
    const embeddings = this.chunks ? { ...CHUNK_EMBEDDINGS, chunks: this.chunks } : VEC0_EMBEDDINGS;
    const digests = `memshift_stored_digest(${POINT_COLUMNS}, ${embeddings.vectorArgs}) AS digest`;
    for await (const rows of this.inPointIdOrder<{ point_id: string; id: number; digest: string }>(range, pageSize, `m.id, ${digests}`, embeddings)) {
      yield rows.map((row) => ({ id: row.point_id, digest: row.digest, at: row.id }));
    }
  }

  /** The point of the row at `at` (a DigestedPoint's), if it is still one this source reads. */
  pointAt(at: number): MemoryPoint | undefined {
    const row = this.db.prepare(`${SELECT_MEMORIES} WHERE m.id = ? AND ${this.filter}`).get(at, ...this.params) as MemoryRow | undefined;
    return row && toMemoryPoint(row);
  }

  /**
   * `columns` of the rows whose point ids lie in `range`, in point-id order.
   * The rows are split by primary key among SORTING_THREADS threads, so each
   * row's id is hashed once and every core sorts; their sorted streams are
   * merged here.
   */
  private async *inPointIdOrder<Row extends { point_id: string }>(
    range: IdRange,
    pageSize: number,
    columns: string,
    embeddings: EmbeddingsRead,
  ): AsyncGenerator<Row[]> {
    const keys = await this.splitKeys(SORTING_THREADS);
    const threads = [-1, ...keys.map(Number)].map((after, i) => {
      const upTo = keys[i] === undefined ? Number.MAX_SAFE_INTEGER : Number(keys[i]);
      const job: PointOrderJob = {
        path: this.db.name,
        // Ids are hashed first, alone; only the rows in range are then joined to their embeddings and sorted.
        // Both scans go in primary-key order (NOT INDEXED, CROSS JOIN): the order chunks hold vectors in.
        sql: `WITH ranked AS MATERIALIZED (SELECT m.id, memshift_point_id(m.content_hash) AS point_id FROM memories m NOT INDEXED
                WHERE ${this.filter} AND m.id > ? AND m.id <= ?)
           SELECT ranked.point_id, ${columns}
             FROM ranked CROSS JOIN memories m ON m.id = ranked.id ${embeddings.join}
            WHERE (? IS NULL OR ranked.point_id >= ?) AND (? IS NULL OR ranked.point_id < ?) ORDER BY ranked.point_id`,
        params: [...this.params, after, upTo, range.from, range.from, range.to, range.to],
        pageSize,
        chunks: embeddings.chunks,
      };
      return startTsThread(path.join(__dirname, 'sqlite-point-order.ts'), job);
    });
    try {
      yield* mergeByPointId(threads.map((thread) => sortedPages<Row>(thread, pageSize)), pageSize);
    } finally {
      await Promise.all(threads.map((thread) => thread.terminate()));
    }
  }

  /** Rows by primary key, for sampled validation. */
  byIds(ids: number[]): MemoryPoint[] {
    if (ids.length === 0) return [];
    const rows = this.db
      .prepare(`${SELECT_MEMORIES} WHERE m.id IN (${ids.map(() => '?').join(',')})`)
      .all(...ids) as MemoryRow[];
    return rows.map(toMemoryPoint);
  }

  /** Rows by content hash (unique), as points keyed by that hash. */
  byContentHashes(hashes: string[]): Map<string, MemoryPoint> {
    const query = this.db.prepare(`${SELECT_MEMORIES} WHERE m.content_hash = ?`);
    const found = new Map<string, MemoryPoint>();
    for (const hash of hashes) {
      const row = query.get(hash) as MemoryRow | undefined;
      if (row) found.set(hash, toMemoryPoint(row));
    }
    return found;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** A worker thread running a TypeScript file, through the same tsx that runs the worker process (and vitest's). */
function startTsThread(file: string, workerData: unknown): Worker {
  const tsx = require.resolve('tsx/cjs/api');
  return new Worker(`require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(file)});`, { eval: true, workerData });
}

/** What a write-back did with each point: the row it updated or inserted. */
export interface WriteBackResult {
  updated: number;
  inserted: number;
  /** Points skipped because the service changed their row after `unchangedSince`. */
  skipped: string[];
}

/**
 * Writes target points back into the source as mcp-memory-service rows, in
 * one transaction: the row with the point's content hash is updated; else the
 * row the point was copied from (payload.source_id, its point id unchanged),
 * whose content the service changed in place; else a new row. The embedding
 * is replaced by the point's vector. With `unchangedSince`, a row whose
 * `updated_at` is later is left alone: the service wrote it after the switch back.
 */
export function writeBackPoints(db: SqliteDb, points: MemoryPoint[], unchangedSince?: number): WriteBackResult {
  const result: WriteBackResult = { updated: 0, inserted: 0, skipped: [] };
  const byHash = db.prepare('SELECT id, updated_at FROM memories WHERE content_hash = ?');
  const byId = db.prepare('SELECT id, content_hash, updated_at FROM memories WHERE id = ?');
  const update = db.prepare(`UPDATE memories SET content_hash = @content_hash, content = @content, tags = @tags, memory_type = @memory_type,
    metadata = @metadata, created_at = @created_at, updated_at = @updated_at, created_at_iso = @created_at_iso,
    updated_at_iso = @updated_at_iso, deleted_at = @deleted_at WHERE id = @id`);
  const insert = db.prepare(`INSERT INTO memories (content_hash, content, tags, memory_type, metadata, created_at, updated_at, created_at_iso, updated_at_iso, deleted_at)
    VALUES (@content_hash, @content, @tags, @memory_type, @metadata, @created_at, @updated_at, @created_at_iso, @updated_at_iso, @deleted_at)`);
  const dropEmbedding = db.prepare('DELETE FROM memory_embeddings WHERE rowid = ?');
  const addEmbedding = db.prepare('INSERT INTO memory_embeddings (rowid, content_embedding) VALUES (?, ?)');
  db.transaction(() => {
    for (const point of points) {
      const row = toMemoryRow(point);
      const sourceId = point.payload.source_id;
      const copiedFrom = typeof sourceId === 'number' ? (byId.get(sourceId) as { id: number; content_hash: string; updated_at: number } | undefined) : undefined;
      const existing =
        (byHash.get(row.content_hash) as { id: number; updated_at: number } | undefined) ??
        (copiedFrom && pointIdForContentHash(copiedFrom.content_hash) === point.id ? copiedFrom : undefined);
      if (existing && unchangedSince !== undefined && (existing.updated_at ?? 0) > unchangedSince) {
        result.skipped.push(point.id);
        continue;
      }
      let rowId: number | bigint;
      if (existing) {
        update.run({ ...row, id: existing.id });
        rowId = existing.id;
        result.updated++;
      } else {
        rowId = insert.run(row).lastInsertRowid;
        result.inserted++;
      }
      dropEmbedding.run(BigInt(rowId));
      addEmbedding.run(BigInt(rowId), Buffer.from(Float32Array.from(point.vector).buffer));
    }
  })();
  return result;
}

/** The inverse of toMemoryPoint; a point without content or content hash cannot be a memory. */
function toMemoryRow(point: MemoryPoint): Omit<MemoryRow, 'id' | 'embedding'> {
  const p = point.payload;
  if (typeof p.content !== 'string' || typeof p.content_hash !== 'string') {
    throw new Error(`point ${point.id} has no content or content_hash`);
  }
  const orNull = <T>(v: unknown, type: string) => (typeof v === type ? (v as T) : null);
  return {
    content_hash: p.content_hash,
    content: p.content,
    tags: Array.isArray(p.tags) ? p.tags.join(',') : null,
    memory_type: orNull<string>(p.memory_type, 'string'),
    metadata: p.metadata === null || p.metadata === undefined ? null : typeof p.metadata === 'string' ? p.metadata : JSON.stringify(p.metadata),
    created_at: orNull<number>(p.created_at, 'number'),
    updated_at: orNull<number>(p.updated_at, 'number'),
    created_at_iso: orNull<string>(p.created_at_iso, 'string'),
    updated_at_iso: orNull<string>(p.updated_at_iso, 'string'),
    deleted_at: orNull<number>(p.deleted_at, 'number'),
  };
}
