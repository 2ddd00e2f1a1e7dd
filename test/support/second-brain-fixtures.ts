/**
 * Second Brain v2 databases as the application creates them (app/database.py
 * at tags v2.0.0 and v2.8.2 of raold/second-brain), filled with memories
 * that exercise the mapping: tags as arrays and strings, blank first lines,
 * first lines longer than v3's 500-character title, non-ASCII text, memories
 * without embeddings, and (optionally) the v1 Qdrant collection `second_brain`
 * holding vectors for some of those.
 */
import pg from 'pg';
import { v4 as uuidv4, v5 as uuidv5 } from 'uuid';
import { QdrantCollection } from '../../activities/stores/qdrant';
import { seededRandom } from '../../scripts/seeded-random';

export type FixtureLayout = 'v2.0' | 'v2.8';
export const DIMENSIONS = 1536;
export const OWNERS = ['alice', 'bob'];

const V20_DDL = `
  CREATE EXTENSION IF NOT EXISTS vector;
  CREATE TABLE IF NOT EXISTS memories (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    content TEXT NOT NULL,
    metadata JSONB DEFAULT '{}',
    embedding vector(${DIMENSIONS}),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
  )`;

const V28_DDL = `
  CREATE EXTENSION IF NOT EXISTS vector;
  DO $$ BEGIN
    CREATE TYPE memory_type_enum AS ENUM ('semantic', 'episodic', 'procedural');
  EXCEPTION WHEN duplicate_object THEN null;
  END $$;
  CREATE TABLE IF NOT EXISTS memories (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    content TEXT NOT NULL,
    embedding vector(${DIMENSIONS}),
    memory_type memory_type_enum NOT NULL DEFAULT 'semantic',
    importance_score DECIMAL(5,4) DEFAULT 0.5000,
    access_count INTEGER DEFAULT 0,
    last_accessed TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    semantic_metadata JSONB DEFAULT '{}',
    episodic_metadata JSONB DEFAULT '{}',
    procedural_metadata JSONB DEFAULT '{}',
    consolidation_score DECIMAL(5,4) DEFAULT 0.5000,
    last_consolidated TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    decay_applied BOOLEAN DEFAULT FALSE,
    metadata JSONB DEFAULT '{}',
    CONSTRAINT valid_importance CHECK (importance_score >= 0.0000 AND importance_score <= 1.0000),
    CONSTRAINT valid_consolidation CHECK (consolidation_score >= 0.0000 AND consolidation_score <= 1.0000)
  );
  CREATE INDEX IF NOT EXISTS idx_memories_memory_type ON memories(memory_type)`;

export interface FixtureOptions {
  layout: FixtureLayout;
  count: number;
  seed?: number;
  /** Every nth memory has no embedding in v2. */
  withoutEmbeddingEvery?: number;
  /** Put each memory's owner in metadata.owner (for owner mapping by metadata field). */
  ownerField?: boolean;
  /** false: leave Fixture.vectors empty (a benchmark's 100k vectors would hold over a GB). */
  keepVectors?: boolean;
}

export interface Fixture {
  ids: string[];
  /** Ids of memories stored without an embedding. */
  withoutEmbedding: string[];
  /** Vectors by memory id, for the v1 collection. */
  vectors: Map<string, number[]>;
}

/** Creates database `name` on the server at `serverUrl` (its maintenance database) and returns its URL. */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export function randomVector(random: () => number): number[] {
  // Float32-representable components, as pgvector stores them.
  return Array.from({ length: DIMENSIONS }, () => Math.fround(random() * 2 - 1));
}

function contentFor(i: number, random: () => number): string {
  switch (i % 7) {
    case 0:
      return `\n\n   Grocery list ${i}\n- milk\n- eggs`;
    case 1:
      return `${'A very long first line '.repeat(30)}${i}\nsecond line`;
    case 2:
      return `Überlegung ${i}: café, naïve, 日本語 — and an emoji 🧠`;
    case 3:
      return '   \n\t\n'; // nothing but blanks: the title falls back to the plan's
    default:
      return `Memory ${i} about ${Math.floor(random() * 1e6)}\nWith details.`;
  }
}

function metadataFor(i: number, options: FixtureOptions, previousId: string | undefined): Record<string, unknown> {
  const metadata: Record<string, unknown> = { source: 'fixture', n: i };
  if (i % 4 === 0 && previousId) metadata.related = [previousId, 'not-a-uuid'];
  if (i % 3 === 0) metadata.tags = ['work', `topic-${i % 5}`, 'work'];
  else if (i % 3 === 1) metadata.tags = `personal, topic-${i % 5} ,`;
  if (i % 11 === 0) metadata.source_url = `https://example.com/${i}`;
  if (options.ownerField) metadata.owner = OWNERS[i % OWNERS.length];
  return metadata;
}

/** Creates the v2 table in the database at `url` and inserts `count` memories. */
export async function createV2Store(url: string, options: FixtureOptions): Promise<Fixture> {
  const random = seededRandom(options.seed ?? 7);
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const fixture: Fixture = { ids: [], withoutEmbedding: [], vectors: new Map() };
  try {
    await db.query(options.layout === 'v2.0' ? V20_DDL : V28_DDL);
    const batch = 100;
    for (let start = 0; start < options.count; start += batch) {
      const rows = [];
      for (let i = start; i < Math.min(options.count, start + batch); i++) {
        const previousId = fixture.ids[fixture.ids.length - 1];
        const id = uuidv4({ random: Uint8Array.from({ length: 16 }, () => Math.floor(random() * 256)) });
        const vector = randomVector(random);
        fixture.ids.push(id);
        if (options.keepVectors !== false) fixture.vectors.set(id, vector);
        const lacks = options.withoutEmbeddingEvery !== undefined && i % options.withoutEmbeddingEvery === 0;
        if (lacks) fixture.withoutEmbedding.push(id);
        // Microseconds on purpose: v3 must keep them.
        const created = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString().replace('Z', `${String(i % 1000).padStart(3, '0')}Z`);
        rows.push({ id, content: contentFor(i, random), metadata: metadataFor(i, options, previousId), vector: lacks ? null : vector, created, i });
      }
      await insertRows(db, options.layout, rows);
    }
  } finally {
    await db.end();
  }
  fixture.ids.sort();
  return fixture;
}

interface FixtureRow {
  id: string;
  content: string;
  metadata: Record<string, unknown>;
  vector: number[] | null;
  created: string;
  i: number;
}

async function insertRows(db: pg.Client, layout: FixtureLayout, rows: FixtureRow[]): Promise<void> {
  const vec = (v: number[] | null) => (v ? `[${v.join(',')}]` : null);
  if (layout === 'v2.0') {
    await db.query(
      `INSERT INTO memories (id, content, metadata, embedding, created_at, updated_at)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::vector[], $5::timestamp[], $5::timestamp[])`,
      [rows.map((r) => r.id), rows.map((r) => r.content), rows.map((r) => JSON.stringify(r.metadata)), rows.map((r) => vec(r.vector)), rows.map((r) => r.created.replace('Z', ''))],
    );
    return;
  }
  const types = ['semantic', 'episodic', 'procedural'];
  await db.query(
    `INSERT INTO memories (id, content, metadata, embedding, created_at, updated_at, memory_type, importance_score, access_count, last_accessed,
       semantic_metadata, episodic_metadata, consolidation_score, decay_applied)
     SELECT id, content, metadata, embedding, created, created + interval '1 hour', memory_type::memory_type_enum, importance, access, created + interval '2 hours',
       semantic, episodic, 0.25, decay
     FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::vector[], $5::timestamptz[], $6::text[], $7::numeric[], $8::int[], $9::jsonb[], $10::jsonb[], $11::bool[])
       AS t(id, content, metadata, embedding, created, memory_type, importance, access, semantic, episodic, decay)`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.content),
      rows.map((r) => JSON.stringify(r.metadata)),
      rows.map((r) => vec(r.vector)),
      rows.map((r) => r.created),
      rows.map((r) => types[r.i % 3]),
      rows.map((r) => ((r.i % 10000) / 10000).toFixed(4)),
      rows.map((r) => r.i % 13),
      rows.map((r) => JSON.stringify({ concepts: [`c${r.i % 4}`] })),
      rows.map((r) => JSON.stringify(r.i % 2 ? { where: 'home' } : {})),
      rows.map((r) => r.i % 5 === 0),
    ],
  );
}

/**
 * The v1 collection as Second Brain 1.x wrote it: point id
 * uuid5(NAMESPACE_URL, memory id), the whole memory in the payload (`id`,
 * `data.note`, `meta.embedding_model`, `meta.version_history`).
 */
export async function createV1Collection(qdrantUrl: string, collection: string, memories: Map<string, number[]>): Promise<void> {
  const store = new QdrantCollection(qdrantUrl, collection);
  await store.create(DIMENSIONS);
  const points = [...memories].map(([id, vector]) => ({
    id: uuidv5(id, uuidv5.URL),
    vector,
    payload: {
      id,
      type: 'note',
      data: { note: `v1 note ${id.slice(0, 8)}` },
      meta: { embedding_model: 'text-embedding-3-small', model_version: 'v1', version_history: [{ version: 1, timestamp: '2023-06-01T00:00:00', changes: 'Updated via API' }] },
    },
  }));
  for (let i = 0; i < points.length; i += 100) await store.upsert(points.slice(i, i + 100));
}
