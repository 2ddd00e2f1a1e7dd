/**
 * A PostgreSQL with pgvector for one test file: the DATABASE_URL server when
 * set (credentials moved to PG* env so plans carry none), PGlite when
 * MEMSHIFT_PG=pglite, else a throwaway native PostgreSQL 18 cluster.
 */
import pg from 'pg';
import { localPostgresIsPglite, startLocalPostgres } from '../../scripts/local-postgres';

export interface TestPostgres {
  /** URL without credentials, as a plan would name it. */
  url: string;
  stop(): Promise<void>;
}

/** PGlite runs one transaction at a time: tests of concurrent sessions need a real server. */
export const postgresIsPglite = !process.env.DATABASE_URL && localPostgresIsPglite;

export async function startTestPostgres(): Promise<TestPostgres> {
  const external = process.env.DATABASE_URL;
  if (!external) return startLocalPostgres();
  const url = new URL(external);
  if (url.username) process.env.PGUSER = decodeURIComponent(url.username);
  if (url.password) process.env.PGPASSWORD = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  return { url: url.toString(), stop: async () => {} };
}

/** A name no other test run uses, for tables and collections on shared servers. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

/** One statement on its own connection: for a test's checks and set-up, outside the code under test. */
export async function queryPostgres<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    return (await db.query<R>(sql, params)).rows;
  } finally {
    await db.end();
  }
}
