/**
 * Benchmark: rebuild a mem0 collection (BENCH_POINTS, default 200k, 768-dim)
 * with BM25 backfill, once with a plain scroll/upsert script and once with
 * memshift's qdrantCollectionRebuild, in the same run against the same Qdrant:
 * the test double in its own process, or the real server at QDRANT_URL.
 * Prints points/s and peak RSS (VmHWM) of the process doing the work.
 *
 *   node --import tsx bench/qdrant-rebuild.ts
 *   QDRANT_URL=http://localhost:6333 BENCH_POINTS=50000 node --import tsx bench/qdrant-rebuild.ts
 */
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BM25_VECTOR_NAME, bm25SparseVector } from '../activities/bm25';
import { QdrantCollection } from '../activities/stores/qdrant';
import { generateMem0Collections } from '../scripts/generate-mem0-collection';
import { TEMPORAL_CLI } from '../test/support/temporal';
import { approveUpdate, statusQuery, type MigrationStatus } from '../workflows/messages';
import { qdrantCollectionRebuild } from '../workflows/qdrant-collection-rebuild';
import { MEMSHIFT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

const POINTS = Number(process.env.BENCH_POINTS ?? 200_000);
const DIMENSIONS = 768;
const BATCH = 500;
const TSX = ['--import', 'tsx'];

/** The baseline: what the seed's migrate_qdrant_to_v3.py does, one scroll/upsert loop with bm25. */
async function plainScrollUpsert(url: string, source: string, target: string): Promise<void> {
  const from = new QdrantCollection(url, source);
  const to = new QdrantCollection(url, target, { sparse: [BM25_VECTOR_NAME], sparseModifier: 'idf' });
  await to.create(DIMENSIONS);
  let cursor: string | null = null;
  do {
    const page = await from.readPage(cursor, BATCH);
    await to.upsert(page.points.map((p) => ({ ...p, sparse: { [BM25_VECTOR_NAME]: bm25SparseVector(String(p.payload.data)) } })));
    cursor = page.next;
  } while (cursor !== null);
}

/** Peak resident set of a running process, from /proc (Linux). */
function peakRssMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : NaN;
}

function spawnTs(args: string[], env: NodeJS.ProcessEnv = {}, nodeOptions: string[] = []): ChildProcess {
  return spawn(process.execPath, [...nodeOptions, ...TSX, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
}

async function firstLineMatching(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const match = pattern.exec(line);
    if (match) return match;
  }
  throw new Error(`process exited before printing ${pattern}`);
}

async function startQdrant(): Promise<{ url: string; stop(): void }> {
  if (process.env.QDRANT_URL) return { url: process.env.QDRANT_URL, stop() {} };
  // Its own process and a big heap: the double holds every collection (and snapshot) in memory.
  const double = spawnTs([path.resolve(__dirname, '../test/qdrant-double/server.ts')], {}, ['--max-old-space-size=16384']);
  const [, url] = await firstLineMatching(double, /^QDRANT_DOUBLE_URL=(\S+)$/);
  return { url, stop: () => double.kill('SIGTERM') };
}

/** Runs the plain script in a child process so its peak RSS is its own. */
async function runPlain(url: string, source: string): Promise<{ seconds: number; rssMb: number }> {
  const started = Date.now();
  const child = spawnTs([__filename, '--plain', url, source, `${source}_plain`]);
  const [, rss] = await firstLineMatching(child, /^PLAIN_DONE rss=(\d+)$/);
  return { seconds: (Date.now() - started) / 1000, rssMb: Number(rss) };
}

async function runMemshift(url: string, source: string, address: string): Promise<{ copySeconds: number; totalSeconds: number; rssMb: number }> {
  const taskQueue = `bench-${Date.now().toString(36)}`;
  const worker = spawnTs([path.resolve(__dirname, '../workers/main.ts')], { TEMPORAL_ADDRESS: address, MEMSHIFT_TASK_QUEUE: taskQueue });
  await firstLineMatching(worker, /^memshift worker on /);
  const client = new Client({ connection: await Connection.connect({ address }) });
  const started = Date.now();
  const handle = await client.workflow.start(qdrantCollectionRebuild, {
    taskQueue,
    workflowId: `bench-${taskQueue}`,
    args: [{ qdrant: { url }, collections: [{ source, target: `${source}_v2`, alias: `${source}_live` }], workDir: mkdtempSync(path.join(os.tmpdir(), 'memshift-bench-')), copy: { batchSize: BATCH, concurrency: 2 }, retention: '0s' }],
  });
  let copyStarted = 0;
  let copyEnded = 0;
  let rssMb = 0;
  for (let status: MigrationStatus = await handle.query(statusQuery); status.phase !== 'await-approval'; status = await handle.query(statusQuery)) {
    if (status.error) throw new Error(status.error);
    if (status.phase === 'copy' && !copyStarted) copyStarted = Date.now();
    if (status.phase !== 'copy' && copyStarted && !copyEnded) copyEnded = Date.now();
    rssMb = peakRssMb(worker.pid!);
    await new Promise((r) => setTimeout(r, 250));
  }
  copyEnded ||= Date.now();
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'bench' }] });
  await handle.result();
  const totalSeconds = (Date.now() - started) / 1000;
  rssMb = peakRssMb(worker.pid!);
  worker.kill('SIGTERM');
  await client.connection.close();
  return { copySeconds: (copyEnded - copyStarted) / 1000, totalSeconds, rssMb };
}

async function main(): Promise<void> {
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: TEMPORAL_CLI }, searchAttributes: MEMSHIFT_SEARCH_ATTRIBUTES, extraArgs: ['--log-level', 'error'] },
  });
  const qdrant = await startQdrant();
  try {
    const source = `mem0_bench_${Date.now().toString(36)}`;
    const generated = Date.now();
    await generateMem0Collections(qdrant.url, { collection: source, count: POINTS, dimensions: DIMENSIONS, entitiesPerUser: 0, batchSize: BATCH });
    console.log(`generated ${POINTS} × ${DIMENSIONS}-dim mem0 points at ${qdrant.url} in ${((Date.now() - generated) / 1000).toFixed(1)}s`);

    const plain = await runPlain(qdrant.url, source);
    const memshift = await runMemshift(qdrant.url, source, env.address);
    const rate = (seconds: number) => Math.round(POINTS / seconds);
    console.log(`\nrebuild of ${POINTS} points (${DIMENSIONS}-dim, bm25 backfill) against ${process.env.QDRANT_URL ? 'Qdrant' : 'the test double'}:`);
    console.log(`  plain scroll/upsert     ${rate(plain.seconds)} points/s   peak RSS ${plain.rssMb} MB`);
    console.log(`  memshift copy phase     ${rate(memshift.copySeconds)} points/s   peak RSS ${memshift.rssMb} MB (worker)`);
    console.log(`  memshift whole workflow ${rate(memshift.totalSeconds)} points/s   (preflight scan, snapshot, copy, catch-up diff, validation, cutover, verify)`);
  } finally {
    qdrant.stop();
    await env.teardown();
  }
}

if (process.argv[2] === '--plain') {
  const [, , , url, source, target] = process.argv;
  plainScrollUpsert(url, source, target).then(
    () => console.log(`PLAIN_DONE rss=${peakRssMb(process.pid)}`),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
