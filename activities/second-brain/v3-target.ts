/**
 * A Second Brain v3 database as a PointTarget. One batch is one transaction:
 * the memories (multi-row INSERT … ON CONFLICT (id) DO UPDATE), their one
 * MemoryCreated event each (deterministic id, so a redone batch rewrites it
 * rather than adding a second), their tags and memory_tags. Reading back
 * gives the same payload shape the v2 source produces, plus the target's
 * verdict on each memory's event and JSON embedding.
 */
import pg from 'pg';
import type { MemoryPoint, PointTarget } from '../stores/contract';
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
const vectorText = (vector: number[]) => (vector.length ? `[${vector.join(',')}]` : null);

export class V3MemoryTarget implements PointTarget {
  constructor(
    private readonly db: pg.Pool,
    /** Ties every event this run writes to the run (events.correlation_id). */
    private readonly correlationId: string,
  ) {}

  async upsert(points: MemoryPoint[]): Promise<void> {
    if (points.length === 0) return;
    const memories = points.map((p) => ({ id: p.id, vector: p.vector, m: p.payload as unknown as V3Memory }));
    const client = await this.db.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO memories (id, user_id, title, content, memory_type, status, importance_score, confidence_score, source_url,
           embedding, embedding_model, metadata, created_at, updated_at, accessed_at, retention_strength, retrieval_count,
           embedding_vector, attachments)
         SELECT id, user_id, title, content, memory_type, status, importance_score, confidence_score, source_url,
           embedding::json, embedding_model, metadata::json, created_at, updated_at, accessed_at, retention_strength, retrieval_count,
           embedding::vector, attachments::json
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::text[],
           $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::float8[], $17::int[], $18::text[])
           AS t(id, user_id, title, content, memory_type, status, importance_score, confidence_score, source_url,
             embedding, embedding_model, metadata, created_at, updated_at, accessed_at, retention_strength, retrieval_count, attachments)
         ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, title = EXCLUDED.title, content = EXCLUDED.content,
           memory_type = EXCLUDED.memory_type, status = EXCLUDED.status, importance_score = EXCLUDED.importance_score,
           confidence_score = EXCLUDED.confidence_score, source_url = EXCLUDED.source_url, embedding = EXCLUDED.embedding,
           embedding_model = EXCLUDED.embedding_model, metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at,
           updated_at = EXCLUDED.updated_at, accessed_at = EXCLUDED.accessed_at, retention_strength = EXCLUDED.retention_strength,
           retrieval_count = EXCLUDED.retrieval_count, embedding_vector = EXCLUDED.embedding_vector, attachments = EXCLUDED.attachments`,
        [
          memories.map((x) => x.id),
          memories.map((x) => x.m.user_id),
          memories.map((x) => x.m.title),
          memories.map((x) => x.m.content),
          memories.map((x) => x.m.memory_type),
          memories.map((x) => x.m.status),
          memories.map((x) => x.m.importance_score),
          memories.map((x) => x.m.confidence_score),
          memories.map((x) => x.m.source_url),
          memories.map((x) => vectorText(x.vector)),
          memories.map((x) => x.m.embedding_model),
          memories.map((x) => JSON.stringify(x.m.metadata)),
          memories.map((x) => x.m.created_at),
          memories.map((x) => x.m.updated_at),
          memories.map((x) => x.m.accessed_at),
          memories.map((x) => x.m.retention_strength),
          memories.map((x) => x.m.retrieval_count),
          memories.map((x) => JSON.stringify(x.m.attachments)),
        ],
      );
      await client.query(
        `INSERT INTO events (id, aggregate_id, event_type, event_version, event_data, user_id, correlation_id, causation_id, created_at, stream_version)
         SELECT id, aggregate_id, '${EVENT_TYPE}', 1, data::json, user_id, $5::uuid, NULL, created_at, 1
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $6::timestamptz[]) AS t(id, aggregate_id, data, user_id, created_at)
         ON CONFLICT (id) DO UPDATE SET event_data = EXCLUDED.event_data, user_id = EXCLUDED.user_id, created_at = EXCLUDED.created_at`,
        [
          memories.map((x) => eventIdFor(x.id)),
          memories.map((x) => x.id),
          memories.map((x) => JSON.stringify(eventDataOf(x.id, x.m))),
          memories.map((x) => x.m.user_id),
          this.correlationId,
          memories.map((x) => x.m.created_at),
        ],
      );
      await this.writeTags(client, memories);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
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

  /** Every memory id, in id order: the deleted-id diff reads ids only. */
  async ids(): Promise<string[]> {
    const { rows } = await this.db.query<{ id: string }>('SELECT id::text AS id FROM memories ORDER BY id');
    return rows.map((r) => r.id);
  }

  /** Removes memories with their events (memory_tags and memory_links cascade). */
  async deleteMemories(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const client = await this.db.connect();
    try {
      await client.query('BEGIN');
      await client.query('DELETE FROM events WHERE aggregate_id = ANY($1::uuid[])', [ids]);
      await client.query('DELETE FROM memories WHERE id = ANY($1::uuid[])', [ids]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
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
