/**
 * A Second Brain v2 database as a PointSource: `memories` read by id (uuid
 * order), each row turned into its v3 memory (v3-memory.ts). Detects the
 * layout: v2.0 (id, content, metadata, embedding, naive timestamps) or v2.8
 * (plus memory_type, importance, access and consolidation columns).
 * Read-only; only a rollback writes here (writeBackV2Rows).
 */
import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import type { MemoryPoint, Page, PointSource } from '../stores/contract';
import { isObject, memoryTypeOf, sourceUrlOf, tagsOf, titleOf, toV3Point, V2_EXTRAS_KEY, type V3Memory } from './v3-memory';

export type V2Layout = 'v2.0' | 'v2.8';

/** A pool, or one client holding a snapshot transaction. */
export type Db = pg.Pool | pg.PoolClient;

export interface V2Shape {
  layout: V2Layout;
  dimensions: number;
  /** v2.0 stores TIMESTAMP without time zone. */
  naiveTimestamps: boolean;
}

const V20_COLUMNS = ['id', 'content', 'metadata', 'embedding', 'created_at', 'updated_at'];
const V28_COLUMNS = ['memory_type', 'importance_score', 'access_count', 'last_accessed', 'semantic_metadata', 'episodic_metadata', 'procedural_metadata', 'consolidation_score', 'last_consolidated', 'decay_applied'];
/** Columns only a v3 `memories` table has. */
const V3_ONLY_COLUMNS = ['user_id', 'title', 'embedding_vector'];

function refuse(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

/** Which v2 layout `public.memories` has, or a non-retryable failure saying why it is not a v2 database. */
export async function inspectV2(db: Db, where: string): Promise<V2Shape> {
  const { rows } = await db.query<{ name: string; type: string; typmod: number }>(
    `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type, a.atttypmod AS typmod
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relname = 'memories' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  const columns = new Map(rows.map((r) => [r.name, r]));
  if (columns.size === 0) refuse(`${where} is not a Second Brain database: it has no table public.memories. Check source.url. Nothing was written.`, 'NotSecondBrainDatabase');
  if (V3_ONLY_COLUMNS.some((c) => columns.has(c))) {
    refuse(`${where} already has the Second Brain v3 layout (memories.${V3_ONLY_COLUMNS.filter((c) => columns.has(c)).join(', ')}); the source must be a v2 database. Nothing was written.`, 'NotSecondBrainV2');
  }
  const missing = V20_COLUMNS.filter((c) => !columns.has(c));
  const v28 = V28_COLUMNS.filter((c) => columns.has(c));
  if (missing.length || (v28.length > 0 && v28.length < V28_COLUMNS.length)) {
    const lacks = [...missing, ...(v28.length ? V28_COLUMNS.filter((c) => !columns.has(c)) : [])];
    refuse(`${where}: memories is neither the v2.0 nor the v2.8 layout (lacks ${lacks.join(', ')}); unknown Second Brain version. Nothing was written.`, 'UnknownSecondBrainVersion');
  }
  const embedding = columns.get('embedding')!;
  if (embedding.type !== 'vector' || embedding.typmod <= 0) {
    refuse(`${where}: memories.embedding is ${embedding.type}, not vector(n); unknown Second Brain version. Nothing was written.`, 'UnknownSecondBrainVersion');
  }
  return {
    layout: v28.length ? 'v2.8' : 'v2.0',
    dimensions: embedding.typmod,
    naiveTimestamps: columns.get('created_at')!.type === 'timestamp without time zone',
  };
}

const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** SQL for the v2 columns as timestamptz and as ISO text to the microsecond. */
export class V2Columns {
  constructor(readonly shape: V2Shape, private readonly zone: string) {}

  /** A timestamptz parameter as the column stores it (the reverse of tz). */
  fromIso(param: string): string {
    return this.shape.naiveTimestamps ? `(${param}::timestamptz AT TIME ZONE ${quoteLiteral(this.zone)})` : `${param}::timestamptz`;
  }

  /** A timestamp column as timestamptz (v2.0's naive ones read in the plan's zone). */
  tz(column: string): string {
    return this.shape.naiveTimestamps ? `(${column} AT TIME ZONE ${quoteLiteral(this.zone)})` : column;
  }

  iso(expression: string): string {
    return `to_char(${expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  }

  /** When a row last changed as a catch-up sees it: v2.8 counts reads (access_count, last_accessed) too. */
  changedAt(): string {
    const columns = ['created_at', 'updated_at', ...(this.shape.layout === 'v2.8' ? ['last_accessed'] : [])];
    return `GREATEST(${columns.map((c) => this.tz(c)).join(', ')})`;
  }

  select(): string {
    const created = `coalesce(${this.tz('created_at')}, ${this.tz('updated_at')})`;
    const updated = `coalesce(${this.tz('updated_at')}, ${this.tz('created_at')})`;
    const common = `id::text AS id, content, metadata, embedding::text AS embedding, ${this.iso(created)} AS created_at, ${this.iso(updated)} AS updated_at`;
    if (this.shape.layout === 'v2.0') return common;
    return `${common}, memory_type::text AS memory_type, importance_score::float8 AS importance_score, access_count,
      ${this.iso(this.tz('last_accessed'))} AS last_accessed, semantic_metadata, episodic_metadata, procedural_metadata,
      consolidation_score::float8 AS consolidation_score, ${this.iso(this.tz('last_consolidated'))} AS last_consolidated, decay_applied`;
  }
}

export interface V2Row {
  id: string;
  content: string;
  metadata: unknown;
  embedding: string | null;
  created_at: string | null;
  updated_at: string | null;
  memory_type?: string | null;
  importance_score?: number | null;
  access_count?: number | null;
  last_accessed?: string | null;
  semantic_metadata?: unknown;
  episodic_metadata?: unknown;
  procedural_metadata?: unknown;
  consolidation_score?: number | null;
  last_consolidated?: string | null;
  decay_applied?: boolean | null;
}

/** The plan's choices a v2 row needs to become a v3 memory. */
export interface V3Mapping {
  layout: V2Layout;
  ownerOf(metadata: unknown): string | null;
  tagsField: string;
  untitled: string;
  defaultMemoryType: string;
  embeddingModel: string;
}

/** A vector for a memory that has none in v2, and the model that made it (the v1 Qdrant collection). */
export type FillVectors = (ids: string[]) => Promise<Map<string, { vector: number[]; model: string | null }>>;

export function toV3Memory(row: V2Row, mapping: V3Mapping, embeddingModel: string | null): V3Memory {
  const owner = mapping.ownerOf(row.metadata);
  if (!owner) refuse(`Memory ${row.id} names no user of the plan's owner mapping; preflight should have stopped this run.`, 'OwnerMissing');
  let metadata: unknown = row.metadata ?? {};
  if (mapping.layout === 'v2.8') {
    const extras = {
      semantic_metadata: row.semantic_metadata ?? null,
      episodic_metadata: row.episodic_metadata ?? null,
      procedural_metadata: row.procedural_metadata ?? null,
      consolidation_score: row.consolidation_score ?? null,
      last_consolidated: row.last_consolidated ?? null,
      decay_applied: row.decay_applied ?? null,
    };
    metadata = isObject(metadata) ? { ...metadata, [V2_EXTRAS_KEY]: extras } : { value: metadata, [V2_EXTRAS_KEY]: extras };
  }
  const created = row.created_at!;
  const updated = row.updated_at!;
  return {
    user_id: owner,
    title: titleOf(row.content, mapping.untitled),
    content: row.content,
    memory_type: memoryTypeOf(row.memory_type ?? null, row.metadata, mapping.defaultMemoryType),
    status: 'active',
    importance_score: row.importance_score ?? 0.5,
    confidence_score: 1,
    source_url: sourceUrlOf(row.metadata),
    embedding_model: embeddingModel,
    metadata,
    created_at: created,
    updated_at: updated,
    accessed_at: row.last_accessed ?? updated,
    retention_strength: 1,
    retrieval_count: row.access_count ?? 0,
    attachments: [],
    tags: tagsOf(row.metadata, mapping.tagsField),
  };
}

/** A catch-up's starting point: the source server's clock when the previous read began. */
export interface V2Watermark {
  at: string;
}

/**
 * Rows whose change time is this close before a watermark are read again: a
 * transaction that stamped NOW() before the watermark may commit after it.
 */
export const WATERMARK_SLACK = "interval '60 seconds'";

export async function watermarkNow(db: Db): Promise<V2Watermark> {
  const { rows } = await db.query<{ at: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at`);
  return { at: rows[0].at };
}

export class V2MemorySource implements PointSource {
  private constructor(
    private readonly db: Db,
    private readonly columns: V2Columns,
    private readonly mapping: V3Mapping,
    private readonly fill: FillVectors | undefined,
    private readonly changedSince: V2Watermark | undefined,
    /** A catch-up attempt's own watermark: its cursors carry it, so a retry that began later starts over. */
    private readonly attemptAt: V2Watermark | undefined,
  ) {}

  /** With `changedSince`, only rows added or changed since that watermark (a catch-up). */
  static async open(db: Db, columns: V2Columns, mapping: V3Mapping, fill?: FillVectors, changedSince?: V2Watermark): Promise<V2MemorySource> {
    return new V2MemorySource(db, columns, mapping, fill, changedSince, changedSince ? await watermarkNow(db) : undefined);
  }

  private filter(firstParam: number): { sql: string; params: unknown[] } {
    if (!this.changedSince) return { sql: 'TRUE', params: [] };
    return { sql: `${this.columns.changedAt()} >= $${firstParam}::timestamptz - ${WATERMARK_SLACK}`, params: [this.changedSince.at] };
  }

  async count(): Promise<number> {
    const filter = this.filter(1);
    const { rows } = await this.db.query<{ n: string }>(`SELECT count(*) AS n FROM memories WHERE ${filter.sql}`, filter.params);
    return Number(rows[0].n);
  }

  async readPage(cursor: string | null, limit: number): Promise<Page> {
    const prefix = this.attemptAt ? `${this.changedSince!.at}>${this.attemptAt.at}:` : '';
    const after = cursor !== null && cursor.startsWith(prefix) ? cursor.slice(prefix.length) : null;
    const filter = this.filter(3);
    // memories.id, not id: that names the text output column, whose sort cannot use the primary key (each page was a full scan and sort).
    const { rows } = await this.db.query<V2Row>(
      `SELECT ${this.columns.select()} FROM memories WHERE ($1::uuid IS NULL OR id > $1::uuid) AND ${filter.sql} ORDER BY memories.id LIMIT $2`,
      [after, limit, ...filter.params],
    );
    const points = await this.toPoints(rows);
    return { points, next: rows.length < limit ? null : `${prefix}${rows[rows.length - 1].id}` };
  }

  /** Rows by id (absent ids are missing from the result). */
  async byIds(ids: string[]): Promise<MemoryPoint[]> {
    const { rows } = await this.db.query<V2Row>(`SELECT ${this.columns.select()} FROM memories WHERE id = ANY($1::uuid[]) ORDER BY memories.id`, [ids]);
    return this.toPoints(rows);
  }

  private async toPoints(rows: V2Row[]): Promise<MemoryPoint[]> {
    const lacking = rows.filter((r) => r.embedding === null).map((r) => r.id);
    const filled = this.fill && lacking.length ? await this.fill(lacking) : new Map<string, { vector: number[]; model: string | null }>();
    return rows.map((row) => {
      const own = row.embedding === null ? null : (JSON.parse(row.embedding) as number[]);
      const found = filled.get(row.id);
      const vector = own ?? found?.vector ?? null;
      const model = own ? this.mapping.embeddingModel : found ? (found.model ?? this.mapping.embeddingModel) : null;
      return toV3Point(row.id, vector, toV3Memory(row, this.mapping, model));
    });
  }

  async close(): Promise<void> {}
}
