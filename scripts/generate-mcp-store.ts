/**
 * Writes an mcp-memory-service-shaped SQLite-vec store: `memories` plus the
 * vec0 `memory_embeddings` table, several users, deterministic content and
 * embeddings. Used by the demo, the tests and the benchmark.
 *
 *   node --import tsx scripts/generate-mcp-store.ts OUT.db [count] [dimensions]
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import * as sqliteVec from 'sqlite-vec';
import { seededRandom } from './seeded-random';

export interface McpStoreOptions {
  count: number;
  dimensions?: number;
  users?: string[];
  /** Every n-th memory is soft-deleted (0 = none). */
  deletedEvery?: number;
  seed?: number;
}

export const MCP_SCHEMA = (dimensions: number) => `
  CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content_hash TEXT UNIQUE NOT NULL,
    content TEXT NOT NULL,
    tags TEXT,
    memory_type TEXT,
    metadata TEXT,
    created_at REAL,
    updated_at REAL,
    created_at_iso TEXT,
    updated_at_iso TEXT,
    deleted_at REAL DEFAULT NULL
  );
  CREATE INDEX IF NOT EXISTS idx_content_hash ON memories(content_hash);
  CREATE VIRTUAL TABLE IF NOT EXISTS memory_embeddings USING vec0(
    content_embedding FLOAT[${dimensions}] distance_metric=cosine
  );`;

const TOPICS = ['coffee', 'deploys', 'postgres', 'hiking', 'tax forms', 'rust', 'sourdough', 'meetings', 'qdrant', 'travel'];
const TYPES = ['note', 'preference', 'fact', 'task'];

export function openWritableStore(path: string, dimensions: number): Database.Database {
  const db = new Database(path);
  sqliteVec.load(db);
  db.exec(MCP_SCHEMA(dimensions));
  return db;
}

/** Inserts memories numbered `from` .. `from + count - 1` (ids follow insertion order). */
export function insertMemories(db: Database.Database, from: number, options: McpStoreOptions): void {
  const dimensions = options.dimensions ?? 384;
  const users = options.users ?? ['alice', 'bob', 'carol', 'dave'];
  const next = seededRandom((options.seed ?? 42) + from);
  const insertMemory = db.prepare(`
    INSERT INTO memories (content_hash, content, tags, memory_type, metadata, created_at, updated_at, created_at_iso, updated_at_iso, deleted_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const insertEmbedding = db.prepare('INSERT INTO memory_embeddings (rowid, content_embedding) VALUES (?, ?)');
  const insertAll = db.transaction(() => {
    for (let i = from; i < from + options.count; i++) {
      const user = users[i % users.length];
      const topic = TOPICS[Math.floor(next() * TOPICS.length)];
      const content = `Memory ${i} for ${user}: thinks about ${topic} (${next().toString(36).slice(2, 10)})`;
      const createdAt = 1_700_000_000 + i * 7.125 + next();
      const vector = new Float32Array(dimensions);
      for (let d = 0; d < dimensions; d++) vector[d] = next() * 2 - 1;
      const deleted = options.deletedEvery && i % options.deletedEvery === options.deletedEvery - 1 ? createdAt + 60 : null;
      const { lastInsertRowid } = insertMemory.run(
        createHash('sha256').update(content).digest('hex'),
        content,
        [topic, `user:${user}`, i % 3 === 0 ? 'important' : ''].filter(Boolean).join(','),
        TYPES[i % TYPES.length],
        JSON.stringify({ user_id: user, source: 'generator', n: i }),
        createdAt,
        createdAt + 1.5,
        new Date(createdAt * 1000).toISOString(),
        new Date((createdAt + 1.5) * 1000).toISOString(),
        deleted,
      );
      insertEmbedding.run(BigInt(lastInsertRowid), Buffer.from(vector.buffer));
    }
  });
  insertAll();
}

export function generateMcpStore(path: string, options: McpStoreOptions): void {
  const db = openWritableStore(path, options.dimensions ?? 384);
  try {
    insertMemories(db, 0, options);
  } finally {
    db.close();
  }
}

if (require.main === module) {
  const [out, count = '20000', dimensions = '384'] = process.argv.slice(2);
  if (!out) {
    console.error('usage: generate-mcp-store.ts OUT.db [count] [dimensions]');
    process.exit(2);
  }
  generateMcpStore(out, { count: Number(count), dimensions: Number(dimensions) });
  console.log(`wrote ${count} memories (${dimensions}-dim) to ${out}`);
}
