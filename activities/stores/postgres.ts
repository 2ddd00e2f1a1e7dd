/**
 * A pgvector table as a point store: `id uuid PRIMARY KEY, embedding
 * vector(dim), payload jsonb`. Works on any PostgreSQL with pgvector — PGlite
 * over TCP by default, DATABASE_URL otherwise. Credentials come from the
 * worker's PGUSER/PGPASSWORD, never from the plan's URL.
 *
 * Batches are written at COPY speed: `COPY … FROM STDIN (FORMAT binary)`
 * straight into the table while every id is new, else into a session-local
 * staging table followed by one `INSERT … SELECT … ON CONFLICT`.
 */
import { ApplicationFailure } from '@temporalio/common';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { IdRange } from '../../workflows/messages';
import type { CountsByPayload, DigestedPoint, MemoryPoint, Page, PointSource, PointTarget } from './contract';
import { STORED_DIGEST_SQL } from './pgvector-digest';

export interface PgvectorTableSpec {
  url: string;
  schema: string;
  table: string;
}

export interface TableDescription {
  exists: boolean;
  dimensions: number | null;
  points: number;
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

export class PgvectorTable implements PointSource, PointTarget, CountsByPayload {
  private readonly pool: pg.Pool;
  private readonly qualified: string;
  private pglite?: Promise<boolean>;

  constructor(private readonly spec: PgvectorTableSpec) {
    this.pool = new pg.Pool({ connectionString: spec.url, max: 4 });
    this.qualified = `${quoteIdent(spec.schema)}.${quoteIdent(spec.table)}`;
  }

  /** Runs one statement: one round trip on PostgreSQL, a transaction of its own on PGlite (see runInTransaction). */
  private async run<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    if (await this.isPglite()) return this.runInTransaction<R>(sql, params);
    return this.pool.query<R>(sql, params).catch((err) => {
      throw classifyPostgresError(err, this.spec);
    });
  }

  /**
   * PGlite's socket server keeps concurrent connections apart only inside
   * transactions, and otherwise interleaves their parse/bind messages ("bind
   * message supplies 3 parameters…"): there every statement is wrapped in one.
   */
  private async runInTransaction<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await client.query<R>(sql, params);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw classifyPostgresError(err, this.spec);
    } finally {
      client.release();
    }
  }

  async describe(): Promise<TableDescription> {
    const column = await this.run<{ typmod: number }>(
      `SELECT a.atttypmod AS typmod FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = 'embedding' AND NOT a.attisdropped`,
      [this.spec.schema, this.spec.table],
    );
    if (column.rowCount === 0) return { exists: false, dimensions: null, points: 0 };
    return { exists: true, dimensions: column.rows[0].typmod, points: await this.count() };
  }

  async create(dimensions: number): Promise<void> {
    await this.run('CREATE EXTENSION IF NOT EXISTS vector');
    await this.run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.spec.schema)}`);
    await this.run(
      `CREATE TABLE IF NOT EXISTS ${this.qualified} (
         id uuid PRIMARY KEY,
         embedding vector(${Math.floor(dimensions)}) NOT NULL,
         payload jsonb NOT NULL)`,
    );
  }

  async drop(): Promise<void> {
    await this.run(`DROP TABLE IF EXISTS ${this.qualified}`);
  }

  async upsert(points: MemoryPoint[]): Promise<void> {
    try {
      await this.insertOrUpdate(points);
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === CONTENT_REJECTED)) throw err;
      throw await this.nameRejectedPoints(points, err);
    }
  }

  private async insertOrUpdate(points: MemoryPoint[]): Promise<void> {
    if (points.length === 0) return;
    if (!(await this.speaksCopy())) return this.insertOrUpdateByArrays(points);
    if (points.every((p) => CANONICAL_UUID.test(p.id)) && (await this.copyNewPoints(points))) return;
    await this.upsertThroughStaging(points);
  }

  /**
   * A first copy writes only ids the table lacks: COPY straight into it costs
   * about half of staging and merging. False, with nothing written, when some
   * id is already there (a redone batch, a catch-up): that batch is upserted.
   */
  private async copyNewPoints(points: MemoryPoint[]): Promise<boolean> {
    const rows = encodeBinaryCopy(points, 'uuid');
    const client = await this.pool.connect();
    try {
      // One COPY is a transaction of its own (all rows or none): no BEGIN/COMMIT round trips.
      await copyIn(client, `${this.qualified} (id, embedding, payload)`, rows);
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) return false;
      throw classifyPostgresError(err, this.spec);
    } finally {
      client.release(); // pg-pool drops a session whose connection failed
    }
  }

  /** COPY into a session-local staging table, then one idempotent INSERT … SELECT … ON CONFLICT. */
  private async upsertThroughStaging(points: MemoryPoint[]): Promise<void> {
    const rows = encodeBinaryCopy(points, 'text');
    await this.inTransaction(async (client) => {
      await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${STAGING_TABLE} (id text, embedding vector, payload jsonb) ON COMMIT DELETE ROWS`);
      await copyIn(client, STAGING_TABLE, rows);
      // id::uuid here, not in COPY: an id PostgreSQL cannot read fails exactly as it did with text input (22P02).
      await client.query(
        `INSERT INTO ${this.qualified} (id, embedding, payload)
         SELECT id::uuid, embedding, payload FROM ${STAGING_TABLE}
         ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, payload = EXCLUDED.payload`,
      );
    });
  }

  private async inTransaction(write: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await write(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw classifyPostgresError(err, this.spec);
    } finally {
      client.release(); // pg-pool drops a session whose connection failed
    }
  }

  /**
   * PGlite's socket server does not speak COPY's sub-protocol (the session
   * ends with "protocol synchronization was lost"): there a batch is one
   * INSERT of arrays unnested server-side.
   */
  private async speaksCopy(): Promise<boolean> {
    return !(await this.isPglite());
  }

  private isPglite(): Promise<boolean> {
    this.pglite ??= this.runInTransaction<{ version: string }>('SELECT version() AS version').then(
      (result) => result.rows[0].version.includes('PGlite'),
      (err) => {
        this.pglite = undefined; // asked again on the next statement: the server may be back
        throw err;
      },
    );
    return this.pglite;
  }

  private async insertOrUpdateByArrays(points: MemoryPoint[]): Promise<void> {
    await this.run(
      `INSERT INTO ${this.qualified} (id, embedding, payload)
       SELECT id, embedding::vector, payload FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) AS t(id, embedding, payload)
       ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, payload = EXCLUDED.payload`,
      [points.map((p) => p.id), points.map((p) => `[${p.vector.join(',')}]`), points.map((p) => JSON.stringify(p.payload))],
    );
  }

  /**
   * PostgreSQL refused a batch's content (e.g. \u0000 in jsonb): it will refuse
   * it on every retry. Writes the points one by one (idempotent) to name the
   * ones it refuses, so a person can fix exactly those memories.
   */
  private async nameRejectedPoints(points: MemoryPoint[], batchError: ApplicationFailure): Promise<ApplicationFailure> {
    const refused: string[] = [];
    for (const point of points) {
      await this.insertOrUpdate([point]).catch(() => refused.push(point.id));
    }
    const ids = refused.length > MAX_NAMED_POINTS ? `${refused.slice(0, MAX_NAMED_POINTS).join(', ')} and ${refused.length - MAX_NAMED_POINTS} more` : refused.join(', ');
    return ApplicationFailure.nonRetryable(`${batchError.message} — refused point(s): ${ids || 'none alone (the batch as a whole)'}. Fix or remove those memories in the source and start again.`, CONTENT_REJECTED);
  }

  async count(): Promise<number> {
    const result = await this.run<{ n: string }>(`SELECT count(*) AS n FROM ${this.qualified}`);
    return Number(result.rows[0].n);
  }

  /** One scan for all values: a count per value would read the table once per user. */
  async countsMatching(path: string, values: string[]): Promise<Map<string, number>> {
    const result = await this.run<{ value: string; n: string }>(
      `SELECT payload #>> $1::text[] AS value, count(*) AS n FROM ${this.qualified} WHERE payload #>> $1::text[] = ANY($2::text[]) GROUP BY 1`,
      [path.split('.'), values],
    );
    return new Map(result.rows.map((row) => [row.value, Number(row.n)]));
  }

  async retrieve(ids: string[]): Promise<MemoryPoint[]> {
    const result = await this.run<PointRow>(
      `SELECT id, embedding::text AS embedding, payload FROM ${this.qualified} WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return result.rows.map(toPoint);
  }

  async deletePoints(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.run(`DELETE FROM ${this.qualified} WHERE id = ANY($1::uuid[])`, [ids]);
  }

  /** The cursor is the last id read (uuid order). */
  async readPage(cursor: string | null, limit: number): Promise<Page> {
    const result = await this.run<PointRow>(
      `SELECT id, embedding::text AS embedding, payload FROM ${this.qualified}
       WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`,
      [cursor, limit],
    );
    const points = result.rows.map(toPoint);
    return { points, next: points.length < limit ? null : points[points.length - 1].id };
  }

  /** Ids only, a page at a time, with readPage's cursors. */
  async readIds(cursor: string | null, limit: number): Promise<{ ids: string[]; next: string | null }> {
    const result = await this.run<{ id: string }>(`SELECT id FROM ${this.qualified} WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`, [cursor, limit]);
    const ids = result.rows.map((row) => row.id);
    return { ids, next: ids.length < limit ? null : ids[ids.length - 1] };
  }

  /** The points with ids in `range`, in id order (uuid byte order, as Qdrant's), a page at a time: one side of an exhaustive comparison. */
  async *streamIdRange(range: IdRange, pageSize: number): AsyncGenerator<MemoryPoint[]> {
    let after: string | null = null;
    for (;;) {
      // Vectors in pgvector's binary form: a third of the bytes of its text, and no float formatting or parsing.
      const result: pg.QueryResult<BinaryPointRow> = await this.run<BinaryPointRow>(
        `SELECT id, vector_send(embedding) AS embedding, payload FROM ${this.qualified}
         WHERE ($1::uuid IS NULL OR id >= $1::uuid) AND ($2::uuid IS NULL OR id < $2::uuid) AND ($3::uuid IS NULL OR id > $3::uuid)
         ORDER BY id LIMIT $4`,
        [range.from, range.to, after, pageSize],
      );
      if (result.rows.length) yield result.rows.map((row) => ({ id: row.id, vector: vectorFromBinary(row.embedding), payload: row.payload }));
      if (result.rows.length < pageSize) return;
      after = result.rows[result.rows.length - 1].id;
    }
  }

  /**
   * The same points as digests of their stored bytes, hashed by PostgreSQL
   * (stores/pgvector-digest.ts), through a cursor requested well ahead of
   * the merge (digests are small). PostgreSQL reads the table in the order
   * it was written and sorts the digests, rather than following the id
   * index: on a cold cache that would be a random read per row, twice
   * (heap and TOAST), and took twice as long at 100k.
   */
  streamDigestsInIdRange(range: IdRange, pageSize: number): AsyncGenerator<DigestedPoint[]> {
    return readAhead(this.digestsByCursor(range, pageSize), DIGEST_PAGES_AHEAD);
  }

  private async *digestsByCursor(range: IdRange, pageSize: number): AsyncGenerator<DigestedPoint[]> {
    const client = await this.pool.connect();
    let failed: unknown;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL work_mem = '${DIGEST_SORT_MEMORY}'`);
      await client.query(
        `DECLARE memshift_digests NO SCROLL CURSOR FOR
         SELECT id, ${STORED_DIGEST_SQL} AS digest FROM ${this.qualified}
         WHERE ($1::uuid IS NULL OR id >= $1::uuid) AND ($2::uuid IS NULL OR id < $2::uuid) ORDER BY id`,
        [range.from, range.to],
      );
      for (;;) {
        const page = await client.query<DigestedPoint>(`FETCH ${Math.floor(pageSize)} FROM memshift_digests`);
        if (page.rows.length) yield page.rows;
        if (page.rows.length < pageSize) break;
      }
    } catch (err) {
      failed = err;
      throw classifyPostgresError(err, this.spec);
    } finally {
      // Read-only: ending the transaction either way only closes the cursor.
      await client.query('ROLLBACK').catch((err) => (failed ??= err));
      client.release(failed instanceof Error ? failed : undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

interface PointRow {
  id: string;
  embedding: string;
  payload: Record<string, unknown>;
}

function toPoint(row: PointRow): MemoryPoint {
  return { id: row.id, vector: JSON.parse(row.embedding), payload: row.payload };
}

interface BinaryPointRow {
  id: string;
  embedding: Buffer;
  payload: Record<string, unknown>;
}

/** pgvector's binary form (vector_send): dimensions (int16), an unused int16, then big-endian float4s, read as they are stored. */
function vectorFromBinary(bytes: Buffer): number[] {
  const dimensions = bytes.readUInt16BE(0);
  const floats = new DataView(bytes.buffer, bytes.byteOffset + 4, 4 * dimensions);
  const vector = new Array<number>(dimensions);
  for (let i = 0; i < dimensions; i++) vector[i] = floats.getFloat32(4 * i);
  return vector;
}

/** Pages of digests requested before they are read: ~100 bytes a point, so a few MB. */
const DIGEST_PAGES_AHEAD = 32;
/**
 * Memory for the sort of one range's digests. At 1M points it spills 58 MB to
 * disk, which measured no slower than 256 MB in memory (10.5 s either way).
 */
const DIGEST_SORT_MEMORY = '64MB';

/** Requests up to `depth` pages at once, from now on, before the reader asks (an async generator serves them in order). */
function readAhead<T>(pages: AsyncGenerator<T>, depth: number): AsyncGenerator<T> {
  const requested: Promise<IteratorResult<T>>[] = [];
  const request = () => {
    while (requested.length < depth) {
      const next = pages.next();
      next.catch(() => undefined); // a failure surfaces when its page is awaited; one never awaited (the reader stopped) is dropped
      requested.push(next);
    }
  };
  request();
  return (async function* () {
    try {
      for (;;) {
        const page = await requested.shift()!;
        if (page.done) return;
        request();
        yield page.value;
      }
    } finally {
      await pages.return(undefined);
    }
  })();
}

const STAGING_TABLE = 'pg_temp.memshift_staging';
const UNIQUE_VIOLATION = '23505';
/** The form whose 16 bytes COPY can carry; any other id PostgreSQL may still read goes through staging as text. */
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** jsonb's binary form is a version byte, then the JSON text. */
const JSONB_VERSION = 1;

export async function copyIn(client: pg.PoolClient, into: string, rows: Buffer): Promise<void> {
  await pipeline(Readable.from([rows]), client.query(copyFrom(`COPY ${into} FROM STDIN (FORMAT binary)`)));
}

/**
 * A batch in COPY's binary format (header, one tuple per point, trailer),
 * ids as uuid bytes or as text. Binary, not text: formatting 384 floats as
 * decimal text costs more than the whole write, and pgvector takes the
 * float4s as they are — the value stored is the one JavaScript rounds to
 * float32, exactly.
 */
function encodeBinaryCopy(points: MemoryPoint[], ids: 'uuid' | 'text'): Buffer {
  const idValues = points.map((p) => (ids === 'uuid' ? p.id.replace(/-/g, '') : p.id));
  const idLength = (i: number) => (ids === 'uuid' ? 16 : Buffer.byteLength(idValues[i]));
  const payloads = points.map((p) => JSON.stringify(p.payload));
  const payloadLengths = payloads.map((json) => Buffer.byteLength(json));
  let size = COPY_SIGNATURE.length + 8 + 2;
  let dimensions = 0;
  for (let i = 0; i < points.length; i++) {
    dimensions = Math.max(dimensions, points[i].vector.length);
    size += 2 + (4 + idLength(i)) + (4 + 4 + 4 * points[i].vector.length) + (4 + 1 + payloadLengths[i]);
  }
  const out = Buffer.allocUnsafe(size);
  // Vectors go through one float32 scratch array: set() rounds to float32 and swap32() makes it big-endian, both natively.
  const scratch = new Float32Array(dimensions);
  const scratchBytes = Buffer.from(scratch.buffer);
  let at = COPY_SIGNATURE.copy(out, 0);
  at = out.writeInt32BE(0, at); // flags
  at = out.writeInt32BE(0, at); // header extension length
  for (let i = 0; i < points.length; i++) {
    const vector = points[i].vector;
    at = out.writeInt16BE(3, at); // fields
    at = out.writeInt32BE(idLength(i), at);
    at += out.write(idValues[i], at, ids === 'uuid' ? 'hex' : 'utf8');
    at = out.writeInt32BE(4 + 4 * vector.length, at);
    at = out.writeUInt16BE(vector.length, at); // pgvector: dimensions, then an unused int16
    at = out.writeInt16BE(0, at);
    scratch.set(vector);
    const floats = scratchBytes.subarray(0, 4 * vector.length).swap32();
    at += floats.copy(out, at);
    at = out.writeInt32BE(1 + payloadLengths[i], at);
    at = out.writeUInt8(JSONB_VERSION, at);
    at += out.write(payloads[i], at, 'utf8');
  }
  out.writeInt16BE(-1, at); // trailer
  return out;
}

const CONTENT_REJECTED = 'ContentRejected';
const MAX_NAMED_POINTS = 10;

/**
 * Deterministic PostgreSQL refusals become non-retryable failures: content it
 * cannot store (SQLSTATE class 22; its message may quote the content, so only
 * the code is kept), bad credentials (28), a missing database (3D), and
 * missing or forbidden objects (42). Everything else (connections, locks,
 * shutdowns) stays retryable. `at` names where: a table, or a description.
 */
export function classifyPostgresError(err: unknown, at: PgvectorTableSpec | string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return err;
  const where = typeof at === 'string' ? at : `${new URL(at.url).host} ${at.schema}.${at.table}`;
  if (code.startsWith('22')) {
    return ApplicationFailure.nonRetryable(`PostgreSQL at ${where} refused the content (SQLSTATE ${code}, data exception)`, CONTENT_REJECTED);
  }
  if (['28', '3D', '42'].includes(code.slice(0, 2))) {
    return ApplicationFailure.nonRetryable(`PostgreSQL at ${where} refused: ${(err as Error).message} (SQLSTATE ${code})`, 'PostgresRefused');
  }
  return err;
}
