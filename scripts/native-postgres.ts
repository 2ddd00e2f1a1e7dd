/**
 * Throwaway native PostgreSQL 18 + pgvector clusters (scripts/install-postgres.sh
 * puts the binaries in .tools/), for tests, benchmarks and the demo.
 *
 * initdb and postgres refuse to run as root, so as root every server command
 * runs as the unprivileged `memshift-pg` user (created by the install) through
 * `runuser`; as anyone else it runs as that user.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './embedded-postgres';

export const POSTGRES_BIN_DIR = path.resolve(__dirname, '../.tools/embedded-postgres/embedded_postgres/pginstall/bin');
const SERVER_USER = 'memshift-pg';

/**
 * Settings for clusters whose data may be lost on a crash (tests): no fsync,
 * no WAL flush wait. Benchmarks pass `{}` to measure a durable server.
 */
export const THROWAWAY_SETTINGS: Record<string, string> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

export interface NativePostgres {
  /** Connection URL without credentials (local trust authentication). */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export function nativePostgresInstalled(): boolean {
  return existsSync(path.join(POSTGRES_BIN_DIR, 'postgres'));
}

const run = promisify(execFile);

/** Runs a server binary as a user PostgreSQL accepts. */
async function asServerUser(binary: string, args: string[]): Promise<void> {
  const file = path.join(POSTGRES_BIN_DIR, binary);
  const asRoot = process.getuid?.() === 0;
  await run(asRoot ? 'runuser' : file, asRoot ? ['-u', SERVER_USER, '--', file, ...args] : args, { timeout: 60_000 });
}

/**
 * A file listing every cluster started (one data directory a line), when the
 * caller sets it (the test suite does): a test process that dies without its
 * cleanup leaves a server running, and stopListedClusters ends them.
 */
const CLUSTER_LIST = process.env.MEMSHIFT_PG_CLUSTER_LIST;

/** Stops every cluster listed in `listFile` that is still running (immediate shutdown; data is throwaway). */
export async function stopListedClusters(listFile: string): Promise<void> {
  const dataDirs = existsSync(listFile) ? readFileSync(listFile, 'utf8').split('\n').filter(Boolean) : [];
  for (const dataDir of dataDirs.filter((dir) => existsSync(path.join(dir, 'postmaster.pid')))) {
    await asServerUser('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => {});
  }
}

export async function startNativePostgres(
  options: { port?: number; dataDir?: string; settings?: Record<string, string> } = {},
): Promise<NativePostgres> {
  if (!nativePostgresInstalled()) {
    throw new Error(`Native PostgreSQL is not installed at ${POSTGRES_BIN_DIR}: run scripts/install-postgres.sh (or set MEMSHIFT_PG=pglite)`);
  }
  const ownsDataDir = !options.dataDir;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'memshift-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', SERVER_USER]);
    const { stdout: gid } = await run('id', ['-g', SERVER_USER]);
    chownSync(dataDir, Number(stdout.trim()), Number(gid.trim()));
  }
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await asServerUser('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
  }
  if (CLUSTER_LIST) appendFileSync(CLUSTER_LIST, `${dataDir}\n`);
  const port = options.port ?? (await freePort());
  const settings = { listen_addresses: '127.0.0.1', port: String(port), unix_socket_directories: '', ...(options.settings ?? THROWAWAY_SETTINGS) };
  const serverOptions = Object.entries(settings).map(([name, value]) => `-c ${name}=${value === '' ? "''" : value}`).join(' ');
  await asServerUser('pg_ctl', ['-D', dataDir, '-l', path.join(dataDir, 'server.log'), '-o', serverOptions, '-w', '-t', '60', 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS vector');
  await client.end();
  return {
    url,
    dataDir,
    async stop() {
      await asServerUser('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
