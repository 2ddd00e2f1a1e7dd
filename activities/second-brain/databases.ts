/**
 * Connections to the two Second Brain databases, and PostgreSQL errors
 * classified: deterministic refusals become non-retryable failures that
 * name the database and SQLSTATE, never a value (a data exception's message
 * may quote memory content).
 */
import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import { describeDatabase } from '../../workflows/second-brain-plan';
import { classifyPostgresError } from '../stores/postgres';

/** pg's own error codes for a missing database (SQLSTATE 3D000). */
export const DATABASE_MISSING = '3D000';

/**
 * The shared classifier (activities/stores/postgres.ts), plus integrity
 * violations (SQLSTATE class 23): a row v2's CHECK constraints or v3's keys
 * refuse is refused again on every retry. Their messages name constraints, not values.
 */
export function classifyPg(err: unknown, url: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^23[0-9A-Z]{3}$/.test(code)) {
    return ApplicationFailure.nonRetryable(`PostgreSQL at ${describeDatabase(url)} refused: ${(err as Error).message} (SQLSTATE ${code})`, 'PostgresRefused');
  }
  return classifyPostgresError(err, describeDatabase(url));
}

/** A pool on `url` for the length of `use`; PGUSER/PGPASSWORD come from the worker's environment. */
export async function withPool<T>(url: string, use: (pool: pg.Pool) => Promise<T>, max = 4): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => undefined); // an idle client's broken connection surfaces on its next query
  try {
    return await use(pool);
  } catch (err) {
    throw classifyPg(err, url);
  } finally {
    await pool.end();
  }
}

/** Runs `work` in one transaction on a client of `pool`: committed when it returns, rolled back when it throws. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Runs `read` in one REPEATABLE READ transaction on the source: catch-up and
 * validation see the v2 database as of one instant while the service writes.
 */
export const inSnapshot = <T>(pool: pg.Pool, read: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
  inTransaction(pool, read, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');

/** The database name in a URL, and the URL of the server's maintenance database `postgres` (to create or drop it). */
export function databaseOf(url: string): { name: string; maintenanceUrl: string } {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'postgres';
  parsed.pathname = '/postgres';
  return { name, maintenanceUrl: parsed.toString() };
}

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Whether two URLs name the same database on the same server. */
export function sameDatabase(a: string, b: string): boolean {
  const [x, y] = [new URL(a), new URL(b)];
  const port = (u: URL) => u.port || '5432';
  return x.hostname === y.hostname && port(x) === port(y) && databaseOf(a).name === databaseOf(b).name;
}

const ID_PAGE = 5000;

/** Every memory id in `db` (v2 or v3: both name the table memories), in uuid order, a page at a time. */
export async function* memoryIdsInOrder(db: pg.Pool | pg.PoolClient): AsyncGenerator<string> {
  let after: string | null = null;
  for (;;) {
    const { rows }: { rows: { id: string }[] } = await db.query<{ id: string }>(
      'SELECT id::text AS id FROM memories WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY memories.id LIMIT $2',
      [after, ID_PAGE],
    );
    for (const row of rows) yield row.id;
    if (rows.length < ID_PAGE) return;
    after = rows[rows.length - 1].id;
  }
}
