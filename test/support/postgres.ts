/**
 * A PostgreSQL with pgvector for one test file: the DATABASE_URL server when
 * set (credentials moved to PG* env so plans carry none), else embedded PGlite.
 */
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres';

export interface TestPostgres {
  /** URL without credentials, as a plan would name it. */
  url: string;
  stop(): Promise<void>;
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const external = process.env.DATABASE_URL;
  if (!external) return startEmbeddedPostgres();
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
