/**
 * mcp-memory-service's SQLite-vec store, read-only: `memories` rows joined by
 * rowid to the `memory_embeddings` vec0 table, read by primary key.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import * as sqliteVec from 'sqlite-vec';
import type { MemoryPoint, Page, PointSource } from './contract';

export type SqliteDb = Database.Database;

/** Opens a database read-only with the sqlite-vec extension loaded. */
export function openReadOnly(path: string): SqliteDb {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  sqliteVec.load(db);
  return db;
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
  const h = createHash('sha1').update(`memshift:mcp-memory:${contentHash}`).digest('hex');
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
  embedding: Buffer | null;
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

export function toMemoryPoint(row: MemoryRow): MemoryPoint {
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
  const vector = row.embedding
    ? Array.from(new Float32Array(row.embedding.buffer, row.embedding.byteOffset, row.embedding.byteLength / 4))
    : [];
  return { id: pointIdForContentHash(row.content_hash), vector, payload };
}

/** Which rows a copy reads: soft-deleted ones only when the plan copies them. */
export function liveRowsFilter(includeDeleted: boolean): string {
  return includeDeleted ? '1 = 1' : 'm.deleted_at IS NULL';
}

const SELECT_MEMORIES = `
  SELECT m.id, m.content_hash, m.content, m.tags, m.memory_type, m.metadata,
         m.created_at, m.updated_at, m.created_at_iso, m.updated_at_iso, m.deleted_at,
         e.content_embedding AS embedding
  FROM memories m LEFT JOIN memory_embeddings e ON e.rowid = m.id`;

export class McpMemorySource implements PointSource {
  private readonly pageQuery: Database.Statement;
  private readonly countQuery: Database.Statement;

  constructor(private readonly db: SqliteDb, includeDeleted: boolean) {
    const filter = liveRowsFilter(includeDeleted);
    this.pageQuery = db.prepare(`${SELECT_MEMORIES} WHERE m.id > ? AND ${filter} ORDER BY m.id LIMIT ?`);
    this.countQuery = db.prepare(`SELECT count(*) AS n FROM memories m WHERE ${filter}`);
  }

  async count(): Promise<number> {
    return (this.countQuery.get() as { n: number }).n;
  }

  /** The cursor is the last primary key read. */
  async readPage(cursor: string | null, limit: number): Promise<Page> {
    const rows = this.pageQuery.all(cursor === null ? -1 : Number(cursor), limit) as MemoryRow[];
    const next = rows.length < limit ? null : String(rows[rows.length - 1].id);
    return { points: rows.map(toMemoryPoint), next };
  }

  /** Rows by primary key, for sampled validation. */
  byIds(ids: number[]): MemoryPoint[] {
    if (ids.length === 0) return [];
    const rows = this.db
      .prepare(`${SELECT_MEMORIES} WHERE m.id IN (${ids.map(() => '?').join(',')})`)
      .all(...ids) as MemoryRow[];
    return rows.map(toMemoryPoint);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
