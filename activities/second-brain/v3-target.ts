/**
 * A Second Brain v3 database as a PointTarget. One batch is one transaction:
 * the memories and their one MemoryCreated event each (binary COPY into
 * staging, then INSERT … ON CONFLICT (id) DO UPDATE; the event id is
 * deterministic, so a redone batch rewrites it rather than adding a second),
 * their tags and memory_tags. Reading back
 * gives the same payload shape the v2 source produces, plus the target's
 * verdict on each memory's event and JSON embedding.
 */
import pg from 'pg';
import type { MemoryPoint, PointTarget } from '../stores/contract';
import { copyIn, COPY_SIGNATURE } from '../stores/postgres';
import { inTransaction, memoryIdsInOrder } from './databases';
import {
  EMBEDDING_JSON_OK,
  EVENT_TYPE,
  eventDataOf,
  eventIdFor,
  eventVerdict,
  sameFloat32Vector,
  tagIdFor,
  type V3Memory,
  type V3Payload,
} from './v3-memory';

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export class V3MemoryTarget implements PointTarget {
  constructor(
    private readonly db: pg.Pool,
    /** Ties every event this run writes to the run (events.correlation_id). */
    private readonly correlationId: string,
  ) {}

  async upsert(points: MemoryPoint[]): Promise<void> {
    if (points.length === 0) return;
    const memories = points.map((p) => ({ id: p.id, vector: p.vector, m: p.payload as unknown as V3Memory }));
    await inTransaction(this.db, async (client) => {
      // Binary COPY into session-local staging tables, then the same idempotent INSERT … ON CONFLICT:
      // no array literals to build, escape and parse, and the vector goes as float4s, not decimal text.
      // The JSON `embedding` is written by PostgreSQL from the stored vector (its text is a JSON array):
      // the same float32 values, and no 1,536 numbers formatted here and sent twice.
      await client.query(STAGING_DDL);
      const rows = new BinaryCopyRows();
      for (const { id, vector, m } of memories) {
        rows.row(18).uuid(id).uuid(m.user_id).text(m.title).text(m.content).text(m.memory_type).text(m.status)
          .float8(m.importance_score).float8(m.confidence_score).text(m.source_url).text(m.embedding_model)
          .text(JSON.stringify(m.metadata)).text(m.created_at).text(m.updated_at).text(m.accessed_at)
          .float8(m.retention_strength).int4(m.retrieval_count).vector(vector.length ? vector : null).text(JSON.stringify(m.attachments));
      }
      await copyIn(client, MEMORIES_STAGING, rows.end());
      const events = new BinaryCopyRows();
      for (const { id, m } of memories) {
        events.row(5).uuid(eventIdFor(id)).uuid(id).text(JSON.stringify(eventDataOf(id, m))).uuid(m.user_id).text(m.created_at);
      }
      await copyIn(client, EVENTS_STAGING, events.end());
      await client.query(
        `INSERT INTO memories (${MEMORY_COLUMNS})
         SELECT id, user_id, title, content, memory_type, status, importance_score, confidence_score, source_url,
           embedding_vector::text::json, embedding_model, metadata, created_at::timestamptz, updated_at::timestamptz, accessed_at::timestamptz,
           retention_strength, retrieval_count, embedding_vector, attachments
         FROM ${MEMORIES_STAGING}
         ON CONFLICT (id) DO UPDATE SET ${MEMORY_COLUMNS.split(', ').filter((c) => c !== 'id').map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`,
      );
      await client.query(
        `INSERT INTO events (id, aggregate_id, event_type, event_version, event_data, user_id, correlation_id, causation_id, created_at, stream_version)
         SELECT id, aggregate_id, '${EVENT_TYPE}', 1, event_data, user_id, $1::uuid, NULL, created_at::timestamptz, 1 FROM ${EVENTS_STAGING}
         ON CONFLICT (id) DO UPDATE SET event_data = EXCLUDED.event_data, user_id = EXCLUDED.user_id, created_at = EXCLUDED.created_at`,
        [this.correlationId],
      );
      await this.writeTags(client, memories);
    });
  }

  /** Tags in (user, name) order, so concurrent batches lock them in one order and never deadlock. */
  private async writeTags(client: pg.PoolClient, memories: { id: string; m: V3Memory }[]): Promise<void> {
    const pairs = memories.flatMap((x) => x.m.tags.map((name) => ({ memory: x.id, user: x.m.user_id, name })));
    const tags = [...new Map(pairs.map((p) => [`${p.user}\u0000${p.name}`, p])).values()].sort((a, b) =>
      a.user === b.user ? (a.name < b.name ? -1 : 1) : a.user < b.user ? -1 : 1,
    );
    if (tags.length) {
      await client.query(
        `INSERT INTO tags (id, name, user_id, usage_count, created_at, updated_at)
         SELECT id, name, user_id, 0, now(), now() FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS t(id, name, user_id)
         ON CONFLICT DO NOTHING`,
        [tags.map((t) => tagIdFor(t.user, t.name)), tags.map((t) => t.name), tags.map((t) => t.user)],
      );
    }
    await client.query('DELETE FROM memory_tags WHERE memory_id = ANY($1::uuid[])', [memories.map((x) => x.id)]);
    if (pairs.length) {
      await client.query(
        `INSERT INTO memory_tags (memory_id, tag_id)
         SELECT t.memory_id, tags.id FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS t(memory_id, user_id, name)
         JOIN tags ON tags.user_id = t.user_id AND tags.name = t.name
         ON CONFLICT DO NOTHING`,
        [pairs.map((p) => p.memory), pairs.map((p) => p.user), pairs.map((p) => p.name)],
      );
    }
  }

  async count(): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM memories');
    return Number(rows[0].n);
  }

  async retrieve(ids: string[]): Promise<MemoryPoint[]> {
    const { rows } = await this.db.query<V3Row>(`${SELECT_V3} WHERE m.id = ANY($1::uuid[]) ORDER BY m.id`, [ids]);
    return rows.map(toPoint);
  }

  /** Memories in id order after `after` (null: from the start): scans for validation and rollback. */
  async page(after: string | null, limit: number): Promise<MemoryPoint[]> {
    const { rows } = await this.db.query<V3Row>(`${SELECT_V3} WHERE ($1::uuid IS NULL OR m.id > $1::uuid) ORDER BY m.id LIMIT $2`, [after, limit]);
    return rows.map(toPoint);
  }

  /** Every memory id, in id order. */
  async ids(): Promise<string[]> {
    const { rows } = await this.db.query<{ id: string }>('SELECT id::text AS id FROM memories ORDER BY memories.id');
    return rows.map((r) => r.id);
  }

  /** Every memory id in uuid order, a page at a time: the deleted-id diff merges it with v2's. */
  idsInOrder(): AsyncGenerator<string> {
    return memoryIdsInOrder(this.db);
  }

  /** Removes memories with their events (memory_tags and memory_links cascade). */
  async deleteMemories(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await inTransaction(this.db, async (client) => {
      await client.query('DELETE FROM events WHERE aggregate_id = ANY($1::uuid[])', [ids]);
      await client.query('DELETE FROM memories WHERE id = ANY($1::uuid[])', [ids]);
    });
  }

  async close(): Promise<void> {}
}

const SELECT_V3 = `
  SELECT m.id::text AS id, m.user_id::text AS user_id, m.title, m.content, m.memory_type, m.status, m.importance_score,
    m.confidence_score, m.source_url, m.embedding::text AS embedding_json, m.embedding_model, m.metadata,
    ${iso('m.created_at')} AS created_at, ${iso('m.updated_at')} AS updated_at, ${iso('m.accessed_at')} AS accessed_at,
    m.retention_strength, m.retrieval_count, m.embedding_vector::text AS vector, m.attachments,
    coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM memory_tags mt JOIN tags t ON t.id = mt.tag_id WHERE mt.memory_id = m.id), '{}') AS tags,
    coalesce((SELECT json_agg(json_build_object('id', e.id, 'type', e.event_type, 'stream_version', e.stream_version, 'data', e.event_data))
      FROM events e WHERE e.aggregate_id = m.id), '[]') AS events
  FROM memories m`;

interface V3Row extends Omit<V3Memory, 'tags'> {
  id: string;
  embedding_json: string | null;
  vector: string | null;
  tags: string[];
  events: { id: string; type: string; stream_version: number; data: unknown }[];
}

function toPoint(row: V3Row): MemoryPoint {
  const { id, embedding_json, vector: vectorText, events, ...columns } = row;
  const memory: V3Memory = { ...columns, tags: [...columns.tags].sort() };
  const vector = vectorText === null ? null : (JSON.parse(vectorText) as number[]);
  const json = embedding_json === null ? null : (JSON.parse(embedding_json) as number[] | null);
  const payload: V3Payload = {
    ...memory,
    event: eventVerdict(id, memory, events),
    embedding_json: sameFloat32Vector(json, vector) ? EMBEDDING_JSON_OK : 'differs from embedding_vector',
  };
  return { id, vector: vector ?? [], payload: payload as unknown as Record<string, unknown> };
}

const MEMORY_COLUMNS =
  'id, user_id, title, content, memory_type, status, importance_score, confidence_score, source_url, embedding, embedding_model, metadata, created_at, updated_at, accessed_at, retention_strength, retrieval_count, embedding_vector, attachments';
const MEMORIES_STAGING = 'pg_temp.memshift_v3_memories';
const EVENTS_STAGING = 'pg_temp.memshift_v3_events';
/** Per session, emptied at each commit. Timestamps stay the payload's ISO text: PostgreSQL parses them to the microsecond, as before. */
const STAGING_DDL = `
  CREATE TEMP TABLE IF NOT EXISTS memshift_v3_memories (id uuid, user_id uuid, title text, content text, memory_type text, status text,
    importance_score float8, confidence_score float8, source_url text, embedding_model text, metadata json,
    created_at text, updated_at text, accessed_at text, retention_strength float8, retrieval_count int4, embedding_vector vector, attachments json)
    ON COMMIT DELETE ROWS;
  CREATE TEMP TABLE IF NOT EXISTS memshift_v3_events (id uuid, aggregate_id uuid, event_data json, user_id uuid, created_at text) ON COMMIT DELETE ROWS`;

/** Rows in COPY's binary format, field by field: each field is its length (-1 for NULL), then its bytes. */
class BinaryCopyRows {
  private readonly parts: Buffer[] = [COPY_SIGNATURE, Buffer.alloc(8)]; // then flags and header extension length, both 0

  row(fields: number): this {
    const count = Buffer.allocUnsafe(2);
    count.writeInt16BE(fields);
    this.parts.push(count);
    return this;
  }

  uuid(id: string): this {
    const field = this.field(16);
    if (id.length !== 36 || field.write(id.replace(/-/g, ''), 4, 'hex') !== 16) throw new Error(`not a uuid: ${id}`);
    return this;
  }

  text(value: string | null): this {
    if (value === null) return this.nullField();
    this.field(Buffer.byteLength(value)).write(value, 4, 'utf8');
    return this;
  }

  float8(value: number): this {
    this.field(8).writeDoubleBE(value, 4);
    return this;
  }

  int4(value: number): this {
    this.field(4).writeInt32BE(value, 4);
    return this;
  }

  /** pgvector's binary form: dimensions (int16), an unused int16, big-endian float4s (JavaScript rounds each to float32, as pgvector would). */
  vector(vector: number[] | null): this {
    if (vector === null) return this.nullField();
    const field = this.field(4 + 4 * vector.length);
    field.writeUInt16BE(vector.length, 4);
    field.writeInt16BE(0, 6);
    const floats = Buffer.from(Float32Array.from(vector).buffer).swap32();
    floats.copy(field, 8);
    return this;
  }

  end(): Buffer {
    const trailer = Buffer.allocUnsafe(2);
    trailer.writeInt16BE(-1);
    return Buffer.concat([...this.parts, trailer]);
  }

  private field(length: number): Buffer {
    const field = Buffer.allocUnsafe(4 + length);
    field.writeInt32BE(length);
    this.parts.push(field);
    return field;
  }

  private nullField(): this {
    const length = Buffer.allocUnsafe(4);
    length.writeInt32BE(-1);
    this.parts.push(length);
    return this;
  }
}
