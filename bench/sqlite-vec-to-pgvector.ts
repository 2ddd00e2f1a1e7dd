/**
 * Benchmark: SQLite-vec → pgvector in one run against one native PostgreSQL:
 * the machine's limit (bench/copy-baseline.ts: one binary COPY stream), a
 * plain script (bench/plain-copy.ts: memshift's adapters, sequential), and
 * memshift's sqliteVecMigration on a real Temporal dev server with 1 and with
 * 2 worker processes. Prints points/s, the ratio to the COPY baseline and
 * each process's peak RSS; several sizes show whether memory stays flat.
 *
 *   npm run bench                                   # 100k memories
 *   npm run bench -- --sizes 100000,1000000         # and 1M (~2 GB of SQLite in .memshift/bench)
 *   [--batch 2000] [--concurrency 2] [--partitions 2] [--workers 1,2] [--heap-mb 256] [--tools copy,plain,memshift] [--repeat 1]
 * --batch defaults to the plan's own for pgvector targets. --repeat runs every
 * tool that many rounds, in turn, each round starting one tool later, and
 * compares each run with the COPY baseline of its own round: this VM's speed
 * drifts by a third within minutes, so one round proves little; the summary
 * gives medians.
 * --partitions is the plan's copy.partitions for runs with more than one
 * worker (a second worker gets work only from a partitioned copy).
 * Sizes above --full-run-max (default 100000) stop memshift's workflow when
 * it awaits approval: the copy and the validation over every point are
 * measured, and the cutover, which takes most of the rest of a run, is not
 * (its time at 100k is printed per phase).
 * --heap-mb caps each copying process's V8 heap: a copy that streams finishes
 * under the same cap at every size, and its peak RSS stays flat; without a cap
 * V8 grows its heap lazily and peak RSS says little about what the copy holds.
 * PostgreSQL: DATABASE_URL when set, else a throwaway native PostgreSQL 18 +
 * pgvector cluster with durable settings (fsync, synchronous commit).
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { startNativePostgres } from '../scripts/native-postgres';
import { startTestPostgres } from '../test/support/postgres';
import { approveUpdate, statusQuery } from '../workflows/messages';
import { DEFAULT_BATCH_SIZE } from '../workflows/plan-schemas';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';
import { runNode } from './run-node';
import { startTemporal } from './temporal';
import { option } from './option';
import { cpuSecondsOf, rssMbOf } from './proc';

const root = path.resolve(__dirname, '..');
const workDir = path.join(root, '.memshift', 'bench');
const bundlePath = path.join(workDir, 'workflows.js');

interface Run {
  size: number;
  round: number;
  tool: string;
  points: number;
  copySeconds: number;
  totalSeconds: number;
  /** One entry per copying process (each worker of a memshift run), at the end of the copy and of the run. */
  copyPeakRssMb: number[];
  peakRssMb: number[];
  /** memshift: seconds per phase, as the status query saw them. */
  phases?: string;
  /** memshift: the validation pass over every point, in seconds (its own measure). */
  everyPointSeconds?: number | null;
  /** CPU seconds of the copy: the copying process(es) and PostgreSQL (null on a DATABASE_URL server). */
  cpuSeconds: { client: number; postgres: number | null };
}

/** A one-process copy script (plain or COPY baseline) that prints {points, seconds} when done. */
async function scriptCopy(tool: string, script: string, size: number, source: string, postgres: BenchPostgres, table: string, batch: number): Promise<Omit<Run, 'round'>> {
  const started = Date.now();
  const postgresCpuAtStart = postgres.cpuSeconds();
  const { exited } = runNode([script, source, postgres.url, table, String(batch)], {}, tool.replace(/\W+/g, '-'), { workDir, heapMb: option('heap-mb', '') });
  const { stdout, peakRssMb } = await exited;
  const { points, seconds, cpuSeconds } = JSON.parse(stdout.trim().split('\n').pop()!);
  const postgresCpu = postgres.cpuSeconds();
  return {
    size, tool, points, copySeconds: seconds, totalSeconds: (Date.now() - started) / 1000, copyPeakRssMb: [peakRssMb], peakRssMb: [peakRssMb],
    cpuSeconds: { client: cpuSeconds, postgres: postgresCpu === null ? null : postgresCpu - postgresCpuAtStart! },
  };
}

interface MemshiftSettings {
  batch: number;
  concurrency: number;
  workers: number;
  partitions: number;
  /** Stop the workflow when it awaits approval (large sizes: the cutover is not what is measured). */
  stopAtApproval: boolean;
}

async function memshiftCopy(size: number, source: string, postgres: BenchPostgres, table: string, address: string, settings: MemshiftSettings): Promise<Omit<Run, 'round'>> {
  const pgUrl = postgres.url;
  const { batch, concurrency, workers: workerCount, partitions, stopAtApproval } = settings;
  const taskQueue = `bench-${size}-${workerCount}w-${Date.now()}`;
  // Prebundled workflows, as a production deploy would ship them: the worker's RSS is the copy's, not webpack's.
  const env = { TEMPORAL_ADDRESS: address, MEMSHIFT_TASK_QUEUE: taskQueue, MEMSHIFT_WORKFLOW_BUNDLE: bundlePath, MEMSHIFT_LOG_LEVEL: 'WARN' };
  const workers = Array.from({ length: workerCount }, (_, i) => runNode(['workers/main.ts'], env, `worker-${i + 1}`, { workDir, heapMb: option('heap-mb', '') }));
  try {
    await Promise.all(workers.map((w) => w.printed('memshift worker on')));
    const client = new Client({ connection: await Connection.connect({ address }) });
    const started = Date.now();
    const handle = await client.workflow.start(sqliteVecMigration, {
      taskQueue,
      workflowId: taskQueue,
      args: [{
        source: { path: source },
        target: { kind: 'pgvector', url: pgUrl, table },
        copy: { batchSize: batch, concurrency, ...(partitions > 1 ? { partitions } : {}) },
        backupPath: path.join(workDir, `${taskQueue}.bak`),
        cutover: { file: path.join(workDir, `${taskQueue}.live.json`) },
      }],
    });
    // Highest RSS sampled while the copy phase runs: the copy's own footprint, not preflight's, backup's or validation's.
    const copyPeakRssMb = workers.map(() => 0);
    const validatePeakRssMb = workers.map(() => 0);
    const phaseSeconds = new Map<string, number>();
    let phaseStarted = started;
    const phaseEnded = (phase: string) => {
      phaseSeconds.set(phase, (phaseSeconds.get(phase) ?? 0) + (Date.now() - phaseStarted) / 1000);
      phaseStarted = Date.now();
    };
    let copied: RegExpExecArray | null = null;
    // The exhaustive pass's own measure (part of the validate phase, after the counts and the sample pre-check).
    let everyPointSeconds: number | null = null;
    const cpuNow = () => ({ client: workers.reduce((sum, w) => sum + cpuSecondsOf(w.child.pid!), 0), postgres: postgres.cpuSeconds() });
    let cpuAtCopyStart = cpuNow();
    let cpuSeconds = cpuAtCopyStart;
    for (let phase = 'preflight'; phase !== 'await-approval'; ) {
      await new Promise((r) => setTimeout(r, 250));
      // A query times out while a synchronous SQLite step (preflight's integrity check of a 2 GB file) holds the worker.
        const status = await handle.query(statusQuery).catch(() => null);
      if (!status) continue;
      // Sampled only on a fresh answer that the copy still runs: a stalled query must not count validation's memory.
      if (status.phase === 'copy') workers.forEach((w, i) => (copyPeakRssMb[i] = Math.max(copyPeakRssMb[i], rssMbOf(w.child.pid!))));
      if (status.phase === 'validate') workers.forEach((w, i) => (validatePeakRssMb[i] = Math.max(validatePeakRssMb[i], rssMbOf(w.child.pid!))));
      if (status.error) throw new Error(status.error);
      everyPointSeconds = status.report?.exhaustive?.seconds ?? everyPointSeconds;
      if (status.phase === phase) continue;
      if (status.phase === 'copy') cpuAtCopyStart = cpuNow();
      if (phase === 'copy') {
        const atEnd = cpuNow();
        cpuSeconds = { client: atEnd.client - cpuAtCopyStart.client, postgres: atEnd.postgres === null ? null : atEnd.postgres - cpuAtCopyStart.postgres! };
        // The workflow's own measure of the copy phase (its note), in either mode.
        copied = status.notes.map((note) => /^Copied (\d+) memories in ([\d.]+)s/.exec(note)).find(Boolean) ?? null;
      }
      phaseEnded(phase);
      phase = status.phase;
    }
    if (!copied) throw new Error('the workflow left the copy phase without its "Copied …" note');
    if (stopAtApproval) {
      await handle.terminate('bench: copy and validation measured');
    } else {
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bench' }] });
      await handle.result();
      phaseEnded('approval to end');
    }
    const totalSeconds = (Date.now() - started) / 1000;
    await client.connection.close();
    for (const w of workers) w.child.kill('SIGTERM');
    const peakRssMb = (await Promise.all(workers.map((w) => w.exited))).map((w) => w.peakRssMb);
    for (const file of readdirSync(workDir).filter((f) => f.startsWith(taskQueue))) rmSync(path.join(workDir, file), { force: true });
    const tool = `memshift, ${workerCount} worker${workerCount > 1 ? 's' : ''}${partitions > 1 ? `, ${partitions} partitions` : ''}`;
    const phases = [...phaseSeconds].map(([phase, seconds]) => `${phase} ${seconds.toFixed(0)}${phase === 'validate' ? ` (every point ${everyPointSeconds?.toFixed(1)}, peak RSS MB ${validatePeakRssMb.join(' + ')})` : ''}`).join(', ');
    return { size, tool, points: Number(copied[1]), copySeconds: Number(copied[2]), totalSeconds: stopAtApproval ? NaN : totalSeconds, copyPeakRssMb, peakRssMb, phases, everyPointSeconds, cpuSeconds };
  } finally {
    for (const w of workers) w.child.kill('SIGTERM'); // also when the run failed: no worker outlives the bench
  }
}

interface BenchPostgres {
  url: string;
  label: string;
  /** All CPU the cluster used so far: postmaster, live processes and exited backends; null when not ours to see. */
  cpuSeconds(): number | null;
  stop(): Promise<void>;
}

/** A cluster's CPU: the postmaster's own and its reaped backends', plus every live child's. */
function clusterCpuSeconds(dataDir: string): number {
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let total = cpuSecondsOf(postmaster, true);
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number)) {
    if (parentOf(pid) === postmaster) total += cpuSecondsOf(pid);
  }
  return total;
}

function parentOf(pid: number): number | null {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
  } catch {
    return null; // exited meanwhile
  }
}

/** DATABASE_URL, else a native cluster with durable settings: the benchmark measures a server that keeps its data. */
async function startPostgres(): Promise<BenchPostgres> {
  if (process.env.DATABASE_URL) return { ...(await startTestPostgres()), label: 'DATABASE_URL', cpuSeconds: () => null };
  const server = await startNativePostgres({ settings: {} });
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const { rows } = await client.query<{ version: string }>(`SELECT current_setting('server_version') || ', pgvector ' || extversion AS version FROM pg_extension WHERE extname = 'vector'`);
  await client.end();
  return { ...server, label: `native PostgreSQL ${rows[0].version}, durable (fsync on)`, cpuSeconds: () => clusterCpuSeconds(server.dataDir) };
}

/** Each run's table is dropped after it: the next run starts on an equally empty server. */
async function dropTable(url: string, table: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS "${table}"`);
  await client.query('CHECKPOINT');
  await client.end();
}

async function main() {
  const sizes = option('sizes', '100000').split(',').map(Number);
  const batch = Number(option('batch', String(DEFAULT_BATCH_SIZE.pgvector)));
  const repeat = Number(option('repeat', '1'));
  const concurrency = Number(option('concurrency', '2'));
  const partitions = Number(option('partitions', '2'));
  const workerCounts = option('workers', '1,2').split(',').map(Number);
  const fullRunMax = Number(option('full-run-max', '100000'));
  const tools = option('tools', 'copy,plain,memshift').split(',');
  mkdirSync(workDir, { recursive: true });
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows/index.ts'), logger: new DefaultLogger('WARN') });
  writeFileSync(bundlePath, code);
  const postgres = await startPostgres();
  const temporal = await startTemporal();
  const runs: Run[] = [];
  const load: string[] = [];
  try {
    for (const size of sizes) {
      const source = path.join(workDir, `mcp-${size}.db`);
      if (!existsSync(source)) generateMcpStore(source, { count: size, dimensions: 384, users: ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'] });
      const table = (tool: string) => `bench_${tool}_${size}_${Date.now()}`;
      for (let round = 1; round <= repeat; round++) {
        const measure = async (tool: string, copy: (table: string) => Promise<Omit<Run, 'round'>>) => {
          load.push(os.loadavg()[0].toFixed(1));
          const t = table(tool);
          const run = { ...(await copy(t)), round };
          runs.push(run);
          console.error(`${size}, round ${round}: ${run.tool} ${Math.round(run.points / run.copySeconds)} points/s in ${run.copySeconds}s, CPU ${JSON.stringify(run.cpuSeconds)}, peak RSS MB during copy ${run.copyPeakRssMb.join(' + ')}, whole run ${run.peakRssMb.join(' + ')}${run.phases ? `; phases: ${run.phases}` : ''}`);
          await dropTable(postgres.url, t);
        };
        const toolsInTurn: (() => Promise<void>)[] = [];
        if (tools.includes('copy')) toolsInTurn.push(() => measure('copy', (t) => scriptCopy('COPY baseline (binary, 1 connection)', 'bench/copy-baseline.ts', size, source, postgres, t, batch)));
        if (tools.includes('plain')) toolsInTurn.push(() => measure('plain', (t) => scriptCopy('plain script', 'bench/plain-copy.ts', size, source, postgres, t, batch)));
        for (const workers of tools.includes('memshift') ? workerCounts : []) {
          const settings = { batch, concurrency, workers, partitions: workers > 1 ? partitions : 1, stopAtApproval: size > fullRunMax };
          toolsInTurn.push(() => measure(`memshift${workers}`, (t) => memshiftCopy(size, source, postgres, t, temporal.address, settings)));
        }
        // Each round starts one tool later: no tool always runs first (on a rested machine) or right after the heaviest.
        for (let i = 0; i < toolsInTurn.length; i++) await toolsInTurn[(i + round - 1) % toolsInTurn.length]();
      }
    }
  } finally {
    temporal.stop();
    await postgres.stop();
  }
  const heap = option('heap-mb', '');
  console.log(`\nSQLite-vec → pgvector, 384-dim, batch ${batch}, memshift concurrency ${concurrency} per copy; ${postgres.label}; ${os.cpus().length} cores, load average before each run: ${load.join(', ')}${heap ? `; V8 heap capped at ${heap} MB` : ''}; ${new Date().toISOString().slice(0, 16)}Z`);
  console.log('| memories | round | tool | copy points/s | × COPY | copy s | CPU s (client + PostgreSQL) | CPU × COPY | end-to-end s | peak RSS MB during copy | peak RSS MB, whole run |');
  console.log('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of runs) {
    const baseline = baselineOf(r);
    const rate = r.points / r.copySeconds;
    const ratio = rate / (baseline.points / baseline.copySeconds);
    const cpu = (run: Run) => run.cpuSeconds.client + (run.cpuSeconds.postgres ?? 0);
    const cpuText = `${r.cpuSeconds.client.toFixed(1)} + ${r.cpuSeconds.postgres?.toFixed(1) ?? '?'}`;
    // CPU × COPY: the baseline's CPU over this tool's, so 1.00 is as cheap as COPY (what the ratio of rates is on an idle machine).
    console.log(`| ${r.size} | ${r.round} | ${r.tool} | ${Math.round(rate)} | ${ratio.toFixed(2)} | ${r.copySeconds.toFixed(1)} | ${cpuText} | ${(cpu(baseline) / cpu(r)).toFixed(2)} | ${Number.isNaN(r.totalSeconds) ? 'stopped at approval' : r.totalSeconds.toFixed(1)} | ${r.copyPeakRssMb.join(' + ')} | ${r.peakRssMb.join(' + ')} |`);
  }
  for (const r of runs.filter((run) => run.phases)) console.log(`${r.size}, round ${r.round}, ${r.tool}: ${r.phases} s`);
  // Medians over rounds: each run against its own round's baseline, and each pass over every point against its own run's copy.
  for (const size of sizes) {
    for (const tool of new Set(runs.filter((r) => r.size === size).map((r) => r.tool))) {
      const of = runs.filter((r) => r.size === size && r.tool === tool);
      const rate = (run: Run) => run.points / run.copySeconds;
      const passes = of.filter((r) => r.everyPointSeconds).map((r) => r.everyPointSeconds! / r.copySeconds);
      const passText = passes.length ? `; pass over every point ${median(passes).toFixed(2)} × its copy (${passes.map((p) => p.toFixed(2)).join(', ')})` : '';
      console.log(`${size}, ${tool}: median × COPY ${median(of.map((r) => rate(r) / rate(baselineOf(r)))).toFixed(2)} over ${of.length} round(s)${passText}`);
    }
  }

  function baselineOf(run: Run): Run {
    return runs.find((b) => b.size === run.size && b.round === run.round && b.tool.startsWith('COPY')) ?? run;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
