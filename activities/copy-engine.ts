/**
 * The one resumable copy every runbook uses: streams pages from a PointSource
 * to a PointTarget with bounded concurrency, and heartbeats the cursor of the
 * last page that is durably written. A retried attempt (worker crash, target
 * outage) starts from that heartbeat, so only the batches since it are redone,
 * and idempotent upserts make redoing them harmless.
 *
 * A retried attempt first looks in the target for the pages read after that
 * heartbeat (which reaches the server only every couple of seconds): pages
 * the crashed attempt already wrote, point for point, are skipped, so a crash
 * redoes at most the pages that were in flight when it happened.
 *
 * A partitioned copy runs this once per key range (CopyJob.range), each range
 * an activity with its own heartbeated cursor, on whichever workers poll.
 *
 * Memory stays flat: at most `concurrency` pages are held at once.
 */
import { Context, CancelledFailure, ApplicationFailure } from '@temporalio/activity';
import type { CopyControl, CopyProgress, CopyRange } from '../workflows/messages';
import { differingFields } from './compare';
import type { MemoryPoint, Page, PointSource, PointTarget } from './stores/contract';
import { workerStopping } from './worker-state';

/** How the running copy talks to its workflow (see copy-channel.ts). */
export interface CopyChannel {
  control(): Promise<CopyControl>;
  report(progress: CopyProgress): Promise<void>;
}

export interface CopyJob {
  source: PointSource;
  target: PointTarget;
  channel: CopyChannel;
  /**
   * Reshapes a page before it is written (re-embedding, sparse vectors). A retry
   * recognises pages already written by the source's ids and payloads, so a
   * transform that rewrites payloads only forgoes that (the pages are written again).
   */
  transform?: (points: MemoryPoint[]) => Promise<MemoryPoint[]>;
  /** Whether `transform` replaces dense vectors (re-embedding): then a retry recognises written pages by payload alone. */
  transformsVectors?: boolean;
  /** The range this copy covers in a partitioned copy: its heartbeat says so, for live progress over all ranges. */
  range?: number;
}

/**
 * A source a copy can split into key ranges (workflows/migration-run.ts
 * copyInRanges): `splitKeys` samples boundary cursors once, `range` reads
 * one slice with the source's own cursors.
 */
export interface PartitionablePointSource extends PointSource {
  splitKeys(parts: number): Promise<string[]>;
  range(range: CopyRange): PointSource;
}

/** One range of a partitioned copy (give it rangeCopyChannel): the copy engine over that slice, heartbeating as that range. */
export function copyRangeResumably(job: Omit<CopyJob, 'source' | 'range'> & { source: PartitionablePointSource }, range: CopyRange): Promise<CopyResult> {
  return copyPointsResumably({ ...job, source: job.source.range(range), range: range.index });
}

/**
 * What the heartbeat carries: the resume point, live progress for `describe`
 * and the Web UI (total, rate), and the progress-report schedule, so a retried
 * attempt keeps to it. Counts and a cursor only, never points.
 */
export interface CopyCheckpoint {
  cursor: string | null;
  copied: number;
  total?: number;
  rate?: number;
  paused?: boolean;
  /** When the first attempt started (epoch ms) and when it last reported. */
  firstStartedAt?: number;
  lastReportAt?: number;
  /** Set in a partitioned copy: which range this is. */
  range?: number;
}

export interface CopyResult {
  copied: number;
  /** Points already copied when this attempt started (from the last heartbeat). */
  resumedFrom: number;
  /** Points this attempt wrote; redone work after a crash shows up here. */
  writtenThisAttempt: number;
  /** Points past the last heartbeat that the target already held as read (written by the crashed attempt), so not written again. */
  alreadyWritten: number;
  attempt: number;
  seconds: number;
}

const CONTROL_POLL_MS = 1_000;
/**
 * Progress reaches the workflow by signal at most once a minute, and less
 * often as the copy ages (every tenth of its age), so a copy of any length
 * adds O(log duration) signals to history: ~100 for a month. Live progress is
 * in the heartbeat, which costs no history.
 */
const MIN_REPORT_INTERVAL_MS = 60_000;
/** Longer than the worker's heartbeat throttle (workers/worker.ts), so the last heartbeat reaches the server. */
const HEARTBEAT_FLUSH_MS = 2_500;
const REPORT_INTERVAL_FRACTION_OF_AGE = 0.1;

interface PendingWrite {
  page: Page;
  written: Promise<void>;
}

export async function copyPointsResumably(job: CopyJob): Promise<CopyResult> {
  const ctx = Context.current();
  const checkpoint: CopyCheckpoint = ctx.info.heartbeatDetails ?? { cursor: null, copied: 0 };
  const total = await job.source.count();
  const started = Date.now();
  const firstStartedAt = checkpoint.firstStartedAt ?? started;
  let lastReportAt = checkpoint.lastReportAt ?? started;
  let committed = { cursor: checkpoint.cursor, copied: checkpoint.copied };
  let written = 0;
  let readCursor = checkpoint.cursor;
  let exhausted = false;
  const pending: PendingWrite[] = [];

  let control = await job.channel.control();
  let lastPoll = Date.now();

  const rate = () => written / Math.max((Date.now() - started) / 1000, 0.001);
  const heartbeat = () =>
    ctx.heartbeat({ ...committed, total, rate: Math.round(rate()), paused: control.paused, firstStartedAt, lastReportAt, range: job.range } satisfies CopyCheckpoint);
  /** Best effort: a report that does not arrive never fails the copy. */
  const report = async (force = false) => {
    const now = Date.now();
    const interval = Math.max(MIN_REPORT_INTERVAL_MS, (now - firstStartedAt) * REPORT_INTERVAL_FRACTION_OF_AGE);
    if (!force && now - lastReportAt < interval) return;
    lastReportAt = now;
    await job.channel.report({ total, copied: committed.copied, rate: rate(), attempt: ctx.info.attempt }).catch(() => undefined);
  };

  const startWrite = (page: Page): PendingWrite => {
    const written = (async () => {
      if (page.points.length === 0) return;
      const points = job.transform ? await job.transform(page.points) : page.points;
      await writeAndVerifyBatch(job.target, points);
    })();
    written.catch(() => undefined); // surfaced when this page reaches the head of the queue
    return { page, written };
  };

  heartbeat();
  let alreadyWritten = 0;
  if (ctx.info.attempt > 1) {
    // Pages the crashed attempt wrote after its last heartbeat: found in the target, not written again.
    while (!exhausted) {
      const page = await job.source.readPage(readCursor, control.batchSize);
      readCursor = page.next;
      exhausted = page.next === null;
      if (page.points.length === 0 || !(await alreadyStored(job.target, page.points, !job.transformsVectors))) {
        pending.push(startWrite(page));
        break;
      }
      alreadyWritten += page.points.length;
      committed = { cursor: page.next, copied: committed.copied + page.points.length };
      heartbeat();
    }
  }
  let stopping = false;
  while (!exhausted || pending.length > 0) {
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('Copy cancelled; resume point is the last heartbeat.');
    if (!stopping && !exhausted && workerStopping()) {
      // A deploy or SIGTERM: finish the pages in flight, record the cursor, hand over to the next worker.
      stopping = true;
      exhausted = true;
    }
    if (Date.now() - lastPoll >= CONTROL_POLL_MS) {
      control = await job.channel.control();
      lastPoll = Date.now();
    }
    // Paused: commit the pages already in flight, then hold, heartbeating the exact count.
    if (control.paused && pending.length === 0) {
      heartbeat();
      await ctx.sleep(CONTROL_POLL_MS);
      continue;
    }
    while (!control.paused && !exhausted && pending.length < control.concurrency) {
      const page = await job.source.readPage(readCursor, control.batchSize);
      readCursor = page.next;
      exhausted = page.next === null;
      pending.push(startWrite(page));
    }
    // Pages commit in read order, so the heartbeated cursor never passes a gap.
    const head = pending.shift();
    if (!head) continue; // the worker began stopping before any page was in flight
    await head.written;
    written += head.page.points.length;
    committed = { cursor: head.page.next, copied: committed.copied + head.page.points.length };
    heartbeat();
    await report();
  }
  if (stopping) {
    await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_FLUSH_MS));
    throw ApplicationFailure.retryable(
      `The worker is shutting down: copy stopped after ${committed.copied} points; the next attempt resumes from there.`,
      'WorkerShuttingDown',
    );
  }
  await report(true);
  return {
    copied: committed.copied,
    resumedFrom: checkpoint.copied,
    writtenThisAttempt: written,
    alreadyWritten,
    attempt: ctx.info.attempt,
    seconds: (Date.now() - started) / 1000,
  };
}

/** A catch-up: the rows the service wrote since a watermark, copied onto a target that holds the rest. */
export interface CatchUpJob {
  source: PointSource;
  target: PointTarget;
  channel: CopyChannel;
  /** Whether the target already holds this point as read: not written again (a watermark's slack re-reads recent rows). */
  alreadyHeld(point: MemoryPoint, stored: MemoryPoint): boolean;
  fingerprint(point: MemoryPoint): string;
  /**
   * After the switch: each point's fingerprint as this run left the target.
   * A point the service has since changed or created there is never
   * overwritten; the record follows each point written.
   */
  leftAtCutover?: Record<string, string>;
  /** Reshapes the points about to be written (re-embedding). */
  reshape?(points: MemoryPoint[]): Promise<MemoryPoint[]>;
}

/** Runs a catch-up through the copy engine; returns how many points it wrote. */
export async function copyChangedPoints(job: CatchUpJob): Promise<number> {
  const { target, leftAtCutover } = job;
  let written = 0;
  await copyPointsResumably({
    source: job.source,
    target,
    channel: job.channel,
    transform: async (points) => {
      const stored = new Map((await target.retrieve(points.map((p) => p.id))).map((p) => [p.id, p]));
      const writable = points.filter((p) => {
        const now = stored.get(p.id);
        if (now && job.alreadyHeld(p, now)) return false;
        return !leftAtCutover || (now && job.fingerprint(now)) === leftAtCutover[p.id];
      });
      const reshaped = job.reshape ? await job.reshape(writable) : writable;
      if (leftAtCutover) for (const p of reshaped) leftAtCutover[p.id] = job.fingerprint(p);
      written += reshaped.length;
      return reshaped;
    },
  });
  return written;
}

/**
 * A dry run's read: every page as the copy would read it, nothing written.
 * Heartbeats each page: a dry run runs as a long activity, and a store that
 * takes longer than the heartbeat timeout to read must not be retried forever.
 */
export async function readEveryPage(source: PointSource, batchSize: number): Promise<{ memories: number; batches: number; readSeconds: number }> {
  const started = Date.now();
  let cursor: string | null = null;
  let memories = 0;
  let batches = 0;
  do {
    const page = await source.readPage(cursor, batchSize);
    memories += page.points.length;
    batches += page.points.length ? 1 : 0;
    cursor = page.next;
    Context.current().heartbeat({ read: memories });
  } while (cursor !== null);
  return { memories, batches, readSeconds: (Date.now() - started) / 1000 };
}

/** Whether the target holds every point of a page as read (payload, and vector unless transformed): written by an earlier attempt. */
async function alreadyStored(target: PointTarget, points: MemoryPoint[], compareVectors: boolean): Promise<boolean> {
  const stored = new Map((await target.retrieve(points.map((p) => p.id))).map((p) => [p.id, p]));
  return points.every((point) => {
    const held = stored.get(point.id);
    if (!held || differingFields(point.payload, held.payload).length > 0) return false;
    return !compareVectors || (held.vector.length === point.vector.length && cosine(point.vector, held.vector) >= SAME_VECTOR_COSINE);
  });
}

/** Stores keep a vector's direction to float32 precision (Qdrant normalizes cosine vectors). */
const SAME_VECTOR_COSINE = 1 - 1e-6;

/**
 * Reads back the first and last point of a written batch: per-batch validation.
 * A mismatch is written and checked once more: a store that stores the same
 * point differently twice will do so on every retry, so that is a deterministic
 * failure naming the point and field, not something to retry forever.
 */
async function writeAndVerifyBatch(target: PointTarget, points: MemoryPoint[]): Promise<void> {
  await target.upsert(points);
  const first = await batchMismatch(target, points);
  if (!first) return;
  await target.upsert(points);
  const second = await batchMismatch(target, points);
  if (!second) return;
  const message = `Batch check failed for point ${second.id}: ${second.problem}`;
  if (second.id === first.id && second.problem === first.problem) {
    throw ApplicationFailure.nonRetryable(`${message}, twice in a row — the target keeps storing it differently from the source, so retrying cannot help.`, 'BatchCheckMismatch');
  }
  throw ApplicationFailure.retryable(message, 'BatchCheckFailed');
}

async function batchMismatch(target: PointTarget, points: MemoryPoint[]): Promise<{ id: string; problem: string } | null> {
  const probes = points.length > 1 ? [points[0], points[points.length - 1]] : points;
  const stored = new Map((await target.retrieve(probes.map((p) => p.id))).map((p) => [p.id, p]));
  for (const expected of probes) {
    const problem = comparePoints(expected, stored.get(expected.id));
    if (problem) return { id: expected.id, problem };
  }
  return null;
}

export const MIN_COSINE = 0.99;

/** Why two points differ (null when equal): vector by cosine, payload by activities/compare.ts' rules. */
export function comparePoints(expected: MemoryPoint, actual: MemoryPoint | undefined): string | null {
  if (!actual) return 'missing from target';
  if (expected.vector.length !== actual.vector.length) {
    return `vector has ${actual.vector.length} dimensions, expected ${expected.vector.length}`;
  }
  const similarity = cosine(expected.vector, actual.vector);
  if (similarity < MIN_COSINE) return `vector cosine ${similarity.toFixed(4)} < ${MIN_COSINE}`;
  const [field] = differingFields(expected.payload, actual.payload);
  if (field) return `payload field '${field}' differs`;
  return null;
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na === 0 && nb === 0) return 1;
  return dot / (Math.sqrt(na) * Math.sqrt(nb));
}
