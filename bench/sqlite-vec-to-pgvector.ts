/**
 * Benchmark: SQLite-vec → pgvector, memshift (the real workflow on a real
 * Temporal dev server, worker in its own process) against a plain script
 * doing the same copy, in the same run, into the same PostgreSQL.
 * Prints points/s and each copying process's peak RSS; several sizes show
 * whether memory stays flat as the dataset grows.
 *
 *   npm run bench -- --sizes 25000,100000 [--batch 500] [--concurrency 2] [--heap-mb 256]
 * --heap-mb caps each copying process's V8 heap: a copy that streams finishes
 * under the same cap at every size, and its peak RSS stays flat; without a cap
 * V8 grows its heap lazily and peak RSS says little about what the copy holds.
 * PostgreSQL: DATABASE_URL when set, else embedded PGlite in this process.
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../scripts/embedded-postgres';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { startTestPostgres } from '../test/support/postgres';
import { approveUpdate, statusQuery } from '../workflows/messages';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';

const root = path.resolve(__dirname, '..');
const workDir = path.join(root, '.memshift', 'bench');
const bundlePath = path.join(workDir, 'workflows.js');

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

interface Run {
  size: number;
  tool: string;
  points: number;
  copySeconds: number;
  totalSeconds: number;
  peakRssMb: number;
}

/** Runs a node script with peak-RSS reporting; resolves with its stdout and peak RSS. */
function runNode(args: string[], env: NodeJS.ProcessEnv, name: string) {
  const rssFile = path.join(workDir, `${name}.rss`);
  rmSync(rssFile, { force: true });
  const heap = option('heap-mb', '');
  const heapCap = heap ? [`--max-old-space-size=${heap}`] : [];
  const child = spawn(process.execPath, [...heapCap, '-r', path.join(__dirname, 'peak-rss.cjs'), '--import', 'tsx', ...args], {
    cwd: root,
    env: { ...process.env, ...env, PEAK_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  const output = new EventEmitter();
  child.stdout.on('data', (d) => {
    stdout += d;
    output.emit('data', stdout);
  });
  const printed = (text: string) =>
    new Promise<void>((resolve) => {
      const check = (all: string) => all.includes(text) && (output.off('data', check), resolve());
      output.on('data', check);
      check(stdout);
    });
  const exited = new Promise<{ stdout: string; peakRssMb: number }>((resolve, reject) =>
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal === null) return reject(new Error(`${name} exited with ${code}`));
      resolve({ stdout, peakRssMb: Math.round(Number(readFileSync(rssFile, 'utf8')) / 1024) });
    }),
  );
  return { child, exited, printed };
}

async function startTemporal(): Promise<{ address: string; stop(): void }> {
  const [port, uiPort] = [await freePort(), await freePort()];
  const server = spawn(path.join(root, 'scripts/temporal-dev-server.sh'), ['--headless'], {
    env: { ...process.env, TEMPORAL_PORT: String(port), TEMPORAL_UI_PORT: String(uiPort) },
    stdio: 'ignore',
    detached: true,
  });
  const address = `127.0.0.1:${port}`;
  for (let i = 0; i < 120; i++) {
    const ok = await Connection.connect({ address, connectTimeout: 1000 }).then((c) => c.close().then(() => true), () => false);
    if (ok) return { address, stop: () => process.kill(-server.pid!, 'SIGTERM') };
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('Temporal dev server did not start');
}

async function plainCopy(size: number, source: string, pgUrl: string, batch: number): Promise<Run> {
  const started = Date.now();
  const { exited } = runNode(['bench/plain-copy.ts', source, pgUrl, `plain_${size}_${Date.now()}`, String(batch)], {}, 'plain');
  const { stdout, peakRssMb } = await exited;
  const { points, seconds } = JSON.parse(stdout.trim().split('\n').pop()!);
  return { size, tool: 'plain script', points, copySeconds: seconds, totalSeconds: (Date.now() - started) / 1000, peakRssMb };
}

async function memshiftCopy(size: number, source: string, pgUrl: string, batch: number, concurrency: number, address: string): Promise<Run> {
  const taskQueue = `bench-${size}-${Date.now()}`;
  // Prebundled workflows, as a production deploy would ship them: the worker's RSS is the copy's, not webpack's.
  const worker = runNode(['workers/main.ts'], { TEMPORAL_ADDRESS: address, MEMSHIFT_TASK_QUEUE: taskQueue, MEMSHIFT_WORKFLOW_BUNDLE: bundlePath, MEMSHIFT_LOG_LEVEL: 'WARN' }, 'worker');
  await worker.printed('memshift worker on');
  const client = new Client({ connection: await Connection.connect({ address }) });
  const started = Date.now();
  const handle = await client.workflow.start(sqliteVecMigration, {
    taskQueue,
    workflowId: taskQueue,
    args: [{
      source: { path: source },
      target: { kind: 'pgvector', url: pgUrl, table: `memshift_${size}_${Date.now()}` },
      copy: { batchSize: batch, concurrency },
      backupPath: path.join(workDir, `${taskQueue}.bak`),
      cutover: { file: path.join(workDir, `${taskQueue}.live.json`) },
    }],
  });
  while ((await handle.query(statusQuery)).phase !== 'await-approval') await new Promise((r) => setTimeout(r, 250));
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'bench' }] });
  const result = await handle.result();
  const totalSeconds = (Date.now() - started) / 1000;
  await client.connection.close();
  worker.child.kill('SIGTERM');
  const { peakRssMb } = await worker.exited;
  rmSync(path.join(workDir, `${taskQueue}.bak`), { force: true });
  return { size, tool: 'memshift', points: result.copied, copySeconds: result.copySeconds, totalSeconds, peakRssMb };
}

async function main() {
  const sizes = option('sizes', '100000').split(',').map(Number);
  const batch = Number(option('batch', '500'));
  const concurrency = Number(option('concurrency', '2'));
  mkdirSync(workDir, { recursive: true });
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows/index.ts'), logger: new DefaultLogger('WARN') });
  writeFileSync(bundlePath, code);
  const postgres = await startTestPostgres();
  const temporal = await startTemporal();
  const runs: Run[] = [];
  try {
    for (const size of sizes) {
      const source = path.join(workDir, `mcp-${size}.db`);
      if (!existsSync(source)) generateMcpStore(source, { count: size, dimensions: 384, users: ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'] });
      runs.push(await plainCopy(size, source, postgres.url, batch));
      runs.push(await memshiftCopy(size, source, postgres.url, batch, concurrency, temporal.address));
      console.error(`done: ${size}`);
    }
  } finally {
    temporal.stop();
    await postgres.stop();
  }
  const heap = option('heap-mb', '');
  console.log(`\nSQLite-vec → pgvector, 384-dim, batch ${batch}, memshift concurrency ${concurrency}, PostgreSQL: ${process.env.DATABASE_URL ? 'DATABASE_URL' : 'PGlite (embedded)'}${heap ? `, V8 heap capped at ${heap} MB` : ''}`);
  console.log('| memories | tool | copy points/s | copy s | end-to-end s | peak RSS MB |');
  console.log('|---:|---|---:|---:|---:|---:|');
  for (const r of runs) {
    console.log(`| ${r.size} | ${r.tool} | ${Math.round(r.points / r.copySeconds)} | ${r.copySeconds.toFixed(1)} | ${r.totalSeconds.toFixed(1)} | ${r.peakRssMb} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
