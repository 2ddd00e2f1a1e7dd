/**
 * Benchmark (skipped unless MEMSHIFT_BENCH=1): Second Brain v2.8 → v3 on
 * native PostgreSQL in one run: a plain script doing the same inserts
 * (test/support/second-brain-plain-copy.ts) against secondBrainV3Migration on
 * the real Temporal server with one worker process. Prints memories/s over
 * the copy and the whole run, and each process's peak RSS.
 *
 *   MEMSHIFT_BENCH=1 MEMSHIFT_BENCH_MEMORIES=100000 npx vitest run test/second-brain-bench.test.ts
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { expect, it } from 'vitest';
import { POSTGRES_BIN_DIR } from '../scripts/native-postgres';
import { approveUpdate } from '../workflows/messages';
import { secondBrainV3Migration } from '../workflows/second-brain-v3-migration';
import { connectClient, spawnWorkerProcess, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { startTestPostgres, uniqueName } from './support/postgres';
import { createDatabase, createV2Store } from './support/second-brain-fixtures';

const MEMORIES = Number(process.env.MEMSHIFT_BENCH_MEMORIES ?? 20_000);
const BATCH = 500;
const peakRss = path.resolve(__dirname, '../bench/peak-rss.cjs');
const mb = (file: string) => Math.round(Number(readFileSync(file, 'utf8')) / 1024);

it.skipIf(!process.env.MEMSHIFT_BENCH)(`${MEMORIES} Second Brain v2.8 memories → v3: memshift against a plain script`, async () => {
  const dir = tempDir();
  const postgres = await startTestPostgres();
  const client = await connectClient();
  try {
    const sourceUrl = await createDatabase(postgres.url, uniqueName('bench_v28'));
    const generated = Date.now();
    await createV2Store(sourceUrl, { layout: 'v2.8', count: MEMORIES });
    console.log(`generated ${MEMORIES} v2.8 memories in ${((Date.now() - generated) / 1000).toFixed(1)}s`);

    const plainTarget = await createDatabase(postgres.url, uniqueName('bench_plain'));
    const plainRss = path.join(dir, 'plain.rss');
    const plain = await new Promise<{ memories: number; seconds: number }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--require', peakRss, '--import', 'tsx', path.resolve(__dirname, 'support/second-brain-plain-copy.ts'), sourceUrl, plainTarget, String(BATCH)], {
        env: { ...process.env, PEAK_RSS_FILE: plainRss },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`plain copy exited ${code}`))));
    });

    console.log(`plain script: ${plain.memories} memories in ${plain.seconds.toFixed(1)}s`);
    const taskQueue = uniqueQueue('sb-bench');
    const workerRss = path.join(dir, 'worker.rss');
    const worker = spawnWorkerProcess(taskQueue, { MEMSHIFT_PG_BIN_DIR: POSTGRES_BIN_DIR, PEAK_RSS_FILE: workerRss, NODE_OPTIONS: `--require ${peakRss}` });
    const target = new URL(postgres.url);
    target.pathname = `/${uniqueName('bench_v3')}`;
    const started = Date.now();
    const handle = await client.workflow.start(secondBrainV3Migration, {
      taskQueue,
      workflowId: uniqueName('sb-bench'),
      args: [{ source: { url: sourceUrl }, target: { url: target.toString() }, owner: { user: { email: 'bench@example.com', username: 'bench' } }, backup: { dir }, cutover: { file: path.join(dir, 'live.json') }, copy: { batchSize: BATCH, concurrency: 2 } }],
    });
    await waitForPhase(handle, 'await-approval', 3_600_000);
    const toApproval = (Date.now() - started) / 1000;
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bench' }] });
    const result = await handle.result();
    worker.kill('SIGTERM');
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(result.copied).toBe(MEMORIES);

    const rows = [
      { tool: 'plain script (same inserts, sequential)', copy: plain.seconds, total: plain.seconds, rss: mb(plainRss) },
      { tool: 'memshift copy phase (concurrency 2)', copy: result.copySeconds, total: toApproval, rss: mb(workerRss) },
    ];
    for (const r of rows) {
      console.log(`${r.tool}: ${Math.round(MEMORIES / r.copy)} memories/s over the copy (${r.copy.toFixed(1)}s); ${r.total.toFixed(1)}s to ${r.tool.startsWith('memshift') ? 'approval (backup, copy, index, validation of every memory)' : 'done (schema, copy, index)'}; peak RSS ${r.rss} MB`);
    }
    const db = new pg.Client({ connectionString: target.toString() });
    await db.connect();
    expect((await db.query('SELECT count(*)::int AS n FROM events')).rows[0].n).toBe(MEMORIES);
    await db.end();
  } finally {
    await postgres.stop();
  }
}, 7_200_000);
