/**
 * The PostgreSQL with pgvector that the demo and tests start on this machine:
 * a throwaway native PostgreSQL 18 cluster, or PGlite (WASM, zero install,
 * one transaction at a time) with MEMSHIFT_PG=pglite.
 */
import { startEmbeddedPostgres } from './embedded-postgres';
import { startNativePostgres } from './native-postgres';

export const localPostgresIsPglite = process.env.MEMSHIFT_PG === 'pglite';

export async function startLocalPostgres(): Promise<{ url: string; stop(): Promise<void> }> {
  return localPostgresIsPglite ? startEmbeddedPostgres() : startNativePostgres();
}
