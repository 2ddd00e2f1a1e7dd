/**
 * Benchmark: Second Brain v2.8 → v3 on native PostgreSQL, in one run: a plain
 * script doing the same inserts (test/support/second-brain-plain-copy.ts:
 * memshift's own reader and writer, one batch after another, no Temporal, no
 * heartbeats, no checks) against secondBrainV3Migration on a real Temporal dev
 * server with one worker process, and PostgreSQL's own binary COPY FROM of the
 * rows memshift wrote (the machine's limit). Prints memories/s over the copy
 * and end to end, and each process's peak RSS (during the copy and over the whole run).
 *
 *   npm run bench:second-brain                          # 100k memories
 *   npm run bench:second-brain -- --memories 30000 [--batch 500] [--concurrency 2]
 * PostgreSQL: DATABASE_URL when set, else a throwaway native PostgreSQL 18 +
 * pgvector cluster with durable settings (fsync, synchronous commit).
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { createReadStream, createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { createVectorIndex, ivfflatLists, v3SchemaDdl } from '../activities/second-brain/v3-schema';
import { POSTGRES_BIN_DIR, startNativePostgres } from '../scripts/native-postgres';
import { startTestPostgres, uniqueName } from '../test/support/postgres';
import { createDatabase, createV2Store } from '../test/support/second-brain-fixtures';
import { approveUpdate, statusQuery } from '../workflows/messages';
import { secondBrainV3Migration } from '../workflows/second-brain-v3-migration';
import { runNode } from './run-node';
import { startTemporal } from './temporal';
import { option } from './option';
import { rssMbOf } from './proc';

const root = path.resolve(__dirname, '..');
/** Progress lines (rate and load) every so many memories: a long run shows whether it slows as the tables grow. */
const PROGRESS_EVERY = 10_000;
const workDir = path.join(root, '.memshift', 'bench', `second-brain-${Date.now()}`);

/** DATABASE_URL, else a native cluster with durable settings: the benchmark measures a server that keeps its data. */
async function startPostgres(): Promise<{ url: string; label: string; stop(): Promise<void> }> {
  if (process.env.DATABASE_URL) return { ...(await startTestPostgres()), label: 'DATABASE_URL' };
  const server = await startNativePostgres({ settings: {} });
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const { rows } = await client.query<{ version: string }>(`SELECT current_setting('server_version') || ', pgvector ' || default_version AS version FROM pg_available_extensions WHERE name = 'vector'`);
  await client.end();
  return { ...server, label: `native PostgreSQL ${rows[0].version}, durable (fsync on)` };
}

interface Run {
  tool: string;
  copySeconds: number;
  totalSeconds: number;
  totalIncludes: string;
  copyPeakRssMb: number;
  peakRssMb: number;
}

async function plainCopy(sourceUrl: string, serverUrl: string, batch: number): Promise<Run> {
  const target = await createDatabase(serverUrl, uniqueName('bench_plain'));
  const script = runNode(['test/support/second-brain-plain-copy.ts', sourceUrl, target, String(batch)], {}, 'plain', { workDir });
  const { stdout, peakRssMb } = await script.exited;
  const { copySeconds, seconds } = JSON.parse(stdout.trim().split('\n').pop()!);
  return { tool: 'plain script (same inserts, one batch after another)', copySeconds, totalSeconds: seconds, totalIncludes: 'schema, copy, index', copyPeakRssMb: peakRssMb, peakRssMb };
}

async function memshiftCopy(memories: number, sourceUrl: string, serverUrl: string, address: string, batch: number, concurrency: number): Promise<{ run: Run; phases: string; targetUrl: string }> {
  const taskQueue = `bench-second-brain-${Date.now()}`;
  // Prebundled workflows, as a production deploy ships them: the worker's RSS is the copy's, not webpack's.
  const bundlePath = path.join(workDir, 'workflows.js');
  writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows/index.ts'), logger: new DefaultLogger('WARN') })).code);
  const env = { TEMPORAL_ADDRESS: address, MEMSHIFT_TASK_QUEUE: taskQueue, MEMSHIFT_WORKFLOW_BUNDLE: bundlePath, MEMSHIFT_LOG_LEVEL: 'WARN', MEMSHIFT_PG_BIN_DIR: process.env.MEMSHIFT_PG_BIN_DIR ?? POSTGRES_BIN_DIR };
  const worker = runNode(['workers/main.ts'], env, 'worker', { workDir });
  try {
    for (let i = 0; !worker.stdout().includes('memshift worker on'); i++) {
      if (i > 600) throw new Error('the worker did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const client = new Client({ connection: await Connection.connect({ address }) });
    const target = new URL(serverUrl);
    target.pathname = `/${uniqueName('bench_v3')}`;
    const started = Date.now();
    const handle = await client.workflow.start(secondBrainV3Migration, {
      taskQueue,
      workflowId: taskQueue,
      args: [{
        source: { url: sourceUrl },
        target: { url: target.toString() },
        owner: { user: { email: 'bench@example.com', username: 'bench' } },
        backup: { dir: workDir },
        cutover: { file: path.join(workDir, 'live.json') },
        copy: { batchSize: batch, concurrency },
      }],
    });
    // Peak RSS sampled while the copy phase runs: the copy's own footprint, not the backup's or validation's.
    let copyPeakRssMb = 0;
    const phaseSeconds = new Map<string, number>();
    let phaseStarted = started;
    let lap = { at: started, copied: 0 };
    for (let phase = 'preflight'; phase !== 'await-approval'; ) {
      await new Promise((r) => setTimeout(r, 250));
      if (phase === 'copy') copyPeakRssMb = Math.max(copyPeakRssMb, rssMbOf(worker.child.pid!));
      const status = await handle.query(statusQuery).catch(() => null);
      if (status && phase === 'copy' && status.copy.copied - lap.copied >= PROGRESS_EVERY) {
        const now = Date.now();
        console.error(`memshift: ${status.copy.copied} memories, ${Math.round((status.copy.copied - lap.copied) / ((now - lap.at) / 1000))}/s over the last ${status.copy.copied - lap.copied}, load ${os.loadavg()[0].toFixed(1)}`);
        lap = { at: now, copied: status.copy.copied };
      }
      if (!status || status.phase === phase) continue;
      if (status.error) throw new Error(status.error);
      phaseSeconds.set(phase, (Date.now() - phaseStarted) / 1000);
      console.error(`memshift: ${phase} took ${phaseSeconds.get(phase)!.toFixed(0)} s, load ${os.loadavg()[0].toFixed(1)}`);
      if (phase === 'copy') console.error(`memshift: ${status.notes.find((note) => note.startsWith('Copied ')) ?? 'copy ended'}; worker peak RSS during copy ${copyPeakRssMb} MB`);
      phaseStarted = Date.now();
      phase = status.phase;
      if (phase === 'copy') lap = { at: phaseStarted, copied: 0 };
    }
    const toApproval = (Date.now() - started) / 1000;
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bench' }] });
    const result = await handle.result();
    if (result.copied !== memories) throw new Error(`memshift copied ${result.copied} of ${memories} memories`);
    await client.connection.close();
    worker.child.kill('SIGTERM');
    const { peakRssMb } = await worker.exited;
    const phases = [...phaseSeconds].map(([phase, seconds]) => `${phase} ${seconds.toFixed(0)}`).join(', ');
    return {
      run: { tool: `memshift, 1 worker, concurrency ${concurrency}`, copySeconds: result.copySeconds, totalSeconds: toApproval, totalIncludes: 'preflight, pg_dump backup, copy, index, every memory validated', copyPeakRssMb, peakRssMb },
      phases,
      targetUrl: target.toString(),
    };
  } finally {
    worker.child.kill('SIGTERM'); // also when the run failed: no worker outlives the bench
  }
}

/**
 * The machine's limit: the v3 tables memshift wrote, COPY'd out in binary to
 * files and timed only coming back in with COPY FROM into an empty v3 schema
 * (its primary keys, foreign keys and indexes in place): PostgreSQL writing the
 * same rows with no reading of v2, no mapping, no checks. Then the vector index.
 */
async function copyLimit(v3Url: string, serverUrl: string): Promise<Run> {
  const target = await createDatabase(serverUrl, uniqueName('bench_limit'));
  const from = new pg.Client({ connectionString: v3Url });
  const into = new pg.Client({ connectionString: target });
  await Promise.all([from.connect(), into.connect()]);
  try {
    const tables = ['users', 'memories', 'events', 'tags', 'memory_tags'];
    for (const table of tables) await pipeline(from.query(copyTo(`COPY ${table} TO STDOUT (FORMAT binary)`)), createWriteStream(path.join(workDir, `${table}.copy`)));
    await into.query(v3SchemaDdl(1536));
    const started = Date.now();
    for (const table of tables) await pipeline(createReadStream(path.join(workDir, `${table}.copy`)), into.query(copyFrom(`COPY ${table} FROM STDIN (FORMAT binary)`)));
    const copySeconds = (Date.now() - started) / 1000;
    const { rows } = await into.query<{ n: string }>('SELECT count(*) AS n FROM memories WHERE embedding_vector IS NOT NULL');
    const pool = new pg.Pool({ connectionString: target, max: 1 });
    await createVectorIndex(pool, ivfflatLists(Number(rows[0].n)), 1536).finally(() => pool.end());
    return { tool: 'PostgreSQL COPY FROM of the same v3 rows (the limit)', copySeconds, totalSeconds: (Date.now() - started) / 1000, totalIncludes: 'copy, index', copyPeakRssMb: NaN, peakRssMb: NaN };
  } finally {
    await Promise.all([from.end(), into.end()]);
  }
}

async function main() {
  const memories = Number(option('memories', '100000'));
  const batch = Number(option('batch', '500'));
  const concurrency = Number(option('concurrency', '2'));
  mkdirSync(workDir, { recursive: true });
  const postgres = await startPostgres();
  const temporal = await startTemporal();
  const runs: Run[] = [];
  const load: string[] = [];
  let phases = '';
  try {
    const sourceUrl = await createDatabase(postgres.url, uniqueName('bench_v28'));
    const generated = Date.now();
    await createV2Store(sourceUrl, { layout: 'v2.8', count: memories, keepVectors: false });
    console.error(`generated ${memories} v2.8 memories in ${((Date.now() - generated) / 1000).toFixed(0)}s`);
    load.push(os.loadavg()[0].toFixed(1));
    runs.push(await plainCopy(sourceUrl, postgres.url, batch));
    console.error(`plain script: ${Math.round(memories / runs[0].copySeconds)} memories/s`);
    load.push(os.loadavg()[0].toFixed(1));
    const memshift = await memshiftCopy(memories, sourceUrl, postgres.url, temporal.address, batch, concurrency);
    runs.push(memshift.run);
    phases = memshift.phases;
    load.push(os.loadavg()[0].toFixed(1));
    runs.push(await copyLimit(memshift.targetUrl, postgres.url));
    console.error(`PostgreSQL COPY: ${Math.round(memories / runs[2].copySeconds)} memories/s`);
  } finally {
    temporal.stop();
    await postgres.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
  console.log(`\nSecond Brain v2.8 → v3, ${memories} memories, 1536-dim, batch ${batch}; ${postgres.label}; ${os.cpus().length} cores, load average before each run: ${load.join(', ')}; ${new Date().toISOString().slice(0, 16)}Z`);
  console.log('| tool | copy memories/s | copy s | end-to-end s | end to end covers | peak RSS MB during copy | peak RSS MB, whole run |');
  console.log('|---|---:|---:|---:|---|---:|---:|');
  const mb = (value: number) => (Number.isNaN(value) ? '— (server side)' : value);
  for (const r of runs) {
    console.log(`| ${r.tool} | ${Math.round(memories / r.copySeconds)} | ${r.copySeconds.toFixed(1)} | ${r.totalSeconds.toFixed(1)} | ${r.totalIncludes} | ${mb(r.copyPeakRssMb)} | ${mb(r.peakRssMb)} |`);
  }
  console.log(`memshift phases (s): ${phases}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
