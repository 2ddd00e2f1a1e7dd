/**
 * Activities of the SQLite-vec runbook (workflows/sqlite-vec-migration.ts).
 * Each takes the validated plan (paths and URLs only) and returns counts,
 * ids (capped), paths and reports — never memories.
 *
 * Nothing lost (issue #7): the source is only read, except by a rollback that
 * carries post-cutover writes back; the service may keep writing while the
 * run copies, waits and cuts over, and catch-ups follow it by watermark; only
 * points this run wrote are ever removed from the target.
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { CopyRange, ExhaustiveComparison, IdRange, RollbackRequest, ValidationReport } from '../workflows/messages';
import { describeTarget } from '../workflows/plan-schemas';
import type { SqliteVecPlan } from '../workflows/sqlite-vec-migration';
import { payloadFingerprint, sameJson } from './compare';
import { currentWorkflow } from './context';
import { catchUpCopyChannel, rangeCopyChannel, workflowCopyChannel } from './copy-channel';
import { copyChangedPoints, copyPointsResumably, copyRangeResumably, cosine, readEveryPage, type CopyResult } from './copy-engine';
import { assertLiveBackendFile, readLiveBackend, recordLiveBackend, restoreLiveBackend, untilQuiet, type ProtectedFiles } from './cutover';
import { reembedPoints } from './embeddings';
import { assertWritableFile, realPathOf, writeFileAtomically } from './files';
import type { MemoryPoint } from './stores/contract';
import { compareIds } from './stores/key-order';
import {
  McpMemorySource,
  inspectMcpStore,
  liveRowsFilter,
  openReadOnly,
  openWritable,
  sourcePointIdsInOrder,
  watermarkOf,
  writeBackPoints,
  type SqliteDb,
  type Watermark,
} from './stores/sqlite';
import { assertTargetUsable, openTarget, prepareTargetStore, type TargetStore } from './targets';
import { buildReport, compareEveryPoint, comparePerUser, compareSamples, type PerUserCount } from './validation';

const USER_PATH = 'metadata.user_id';
/** Ids named in results and errors are capped: history stays small. */
const MAX_IDS = 20;
const SCAN_PAGE = 500;
const SCAN_IDS_PAGE = 5_000;
/**
 * Points per page on each side of an exhaustive comparison. Small: pages that
 * die young stay out of V8's old generation (at 100k, 250 cost ~20 % less CPU
 * and ~90 MB less RSS than 1,000).
 */
const COMPARE_PAGE = 250;
/** Digests are 32 characters a point: larger pages, fewer round trips. */
const DIGEST_PAGE = 2_000;

export interface SqliteVecPreflight {
  memories: number;
  deleted: number;
  dimensions: number;
  users: number;
  sourceBytes: number;
}

export interface CatchUpResult {
  watermark: Watermark;
  /** Rows added or changed since the previous watermark, written to the target. */
  upserted: number;
  /** Points this run wrote whose rows were deleted (or soft-deleted, when skipped) since. */
  removed: number;
}

function fail(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

async function openSource(plan: SqliteVecPlan): Promise<SqliteDb> {
  const file = plan.source.path;
  const stat = await fs.stat(file).catch(() => null);
  if (!stat?.isFile()) fail(`Source database not found: ${file}. Check source.path.`, 'SourceNotFound');
  try {
    return openReadOnly(file);
  } catch (err) {
    fail(`Cannot open ${file} as SQLite: ${(err as Error).message}`, 'SourceUnreadable');
  }
}

async function withSource<T>(plan: SqliteVecPlan, use: (db: SqliteDb) => Promise<T>): Promise<T> {
  const db = await openSource(plan);
  try {
    return await use(db);
  } finally {
    db.close();
  }
}

async function withTarget<T>(plan: SqliteVecPlan, use: (target: TargetStore) => Promise<T>): Promise<T> {
  const target = openTarget(plan.target);
  try {
    return await use(target);
  } finally {
    await target.close();
  }
}

/**
 * Runs `read` in one read transaction: it sees the source as of one instant
 * while the service keeps committing (mcp-memory-service runs SQLite in WAL
 * mode, where readers never block its writes).
 */
async function inSnapshot<T>(db: SqliteDb, read: () => Promise<T>): Promise<T> {
  db.exec('BEGIN');
  try {
    return await read();
  } finally {
    db.exec('COMMIT');
  }
}

function integrityProblems(db: SqliteDb): string[] {
  const rows = db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
}

function targetDimensions(plan: SqliteVecPlan, sourceDimensions: number): number {
  return plan.reembed?.dimensions ?? sourceDimensions;
}

function perUserSourceCounts(db: SqliteDb, includeDeleted: boolean): PerUserCount[] {
  return db
    .prepare(
      `SELECT json_extract(m.metadata, '$.user_id') AS user, count(*) AS n FROM memories m
       WHERE ${liveRowsFilter(includeDeleted)} GROUP BY user ORDER BY user`,
    )
    .all() as PerUserCount[];
}

export function backupPathFor(plan: SqliteVecPlan, workflowId: string): string {
  if (plan.backupPath) return plan.backupPath;
  const safeId = workflowId.replace(/[^A-Za-z0-9_.-]/g, '_');
  return path.join(path.dirname(plan.source.path), `${path.basename(plan.source.path)}.memshift-${safeId}.bak`);
}

// --- files this run writes -----------------------------------------------------

/** The backup and the records kept beside it. */
function runFiles(plan: SqliteVecPlan, workflowId: string) {
  const backup = backupPathFor(plan, workflowId);
  return {
    backup,
    /** Names the workflow that owns the backup, so only its own retry may find the backup existing. */
    owner: `${backup}.owner`,
    partial: `${backup}.partial`,
    /** The target's point ids before this run (existingTarget: resume), which no removal touches. */
    targetBefore: `${backup}.target-before.json`,
    /** The target as this run left it at cutover: id → fingerprint; rollback diffs the target against it. */
    targetAtCutover: `${backup}.target-at-cutover.json`,
  };
}

function protectedFiles(plan: SqliteVecPlan, backup?: string): ProtectedFiles {
  const files = [{ file: plan.source.path, what: 'the source database' }];
  return backup ? [...files, { file: backup, what: 'the backup' }] : files;
}

/** Every file the run will write is refused here, before anything is written, if it could damage data. */
async function assertPlanFilesSafe(plan: SqliteVecPlan, workflowId: string): Promise<void> {
  const files = runFiles(plan, workflowId);
  const guard = protectedFiles(plan);
  for (const file of [files.backup, files.owner, files.partial, files.targetBefore, files.targetAtCutover]) {
    await assertWritableFile(file, 'backupPath', guard);
  }
  for (const file of [files.backup, files.owner]) {
    if ((await fileExists(file)) && !(await ownsBackup(files.owner, workflowId))) {
      fail(`backupPath: ${file} already exists; memshift never overwrites a file it did not write in this run. Pick a new path. Nothing was written.`, 'BackupExists');
    }
  }
  await assertLiveBackendFile(plan.cutover.file, protectedFiles(plan, files.backup));
  if ((await realPathOf(plan.cutover.file)) === (await realPathOf(files.owner))) {
    fail(`cutover.file (${plan.cutover.file}) is one of the backup's records; pick another path. Nothing was written.`, 'PathIsProtected');
  }
}

const fileExists = (file: string) => fs.stat(file).then(() => true, () => false);
const ownsBackup = (owner: string, workflowId: string) => fs.readFile(owner, 'utf8').then((id) => id === workflowId, () => false);

/** A record this run wrote, or null when it never wrote it. Any other read error stops the run: guessing could delete data. */
async function readJson<T>(file: string): Promise<T | null> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw ApplicationFailure.nonRetryable(`Cannot read this run's record ${file}: ${err.code ?? err.message}. Nothing was changed; restore the file and retry.`, 'RunRecordUnreadable');
  });
  return text === null ? null : (JSON.parse(text) as T);
}

const writeJson = (plan: SqliteVecPlan, file: string, value: unknown) => writeFileAtomically(file, JSON.stringify(value), 'backupPath', protectedFiles(plan));

interface TargetBefore {
  created: boolean;
  ids: string[];
}

async function pointsBeforeRun(plan: SqliteVecPlan): Promise<Set<string>> {
  const before = await readJson<TargetBefore>(runFiles(plan, currentWorkflow().workflowId).targetBefore);
  return new Set(before?.ids ?? []);
}

interface CutoverRecord {
  /** The source watermark the target was caught up to when it went live. */
  watermark: Watermark;
  fingerprints: Record<string, string>;
  /**
   * Set by rollback just before it points the service back at SQLite: the
   * newest `updated_at` in the source then. The service's own clock, so its
   * writes after the switch back are later whatever the worker's clock says.
   */
  switchedBackAt?: number;
}

// --- target scans ---------------------------------------------------------------

/**
 * Stores keep a vector's direction, not always its length (Qdrant normalizes
 * cosine vectors), so fingerprints see the unit vector at 6 digits and
 * comparisons the cosine. A fingerprint mismatch is only a candidate change;
 * sameMemory decides.
 */
const SAME_VECTOR_COSINE = 1 - 1e-6;

function pointFingerprint(point: MemoryPoint): string {
  const norm = Math.hypot(...point.vector) || 1;
  return payloadFingerprint({ payload: point.payload, vector: point.vector.map((x) => Number((x / norm).toPrecision(6))) });
}

const sameVector = (a: MemoryPoint, b: MemoryPoint) => a.vector.length === b.vector.length && cosine(a.vector, b.vector) >= SAME_VECTOR_COSINE;

/** A memory as the service sees it: payload without memshift's source_id, vector by direction. */
function sameMemory(a: MemoryPoint, b: MemoryPoint | undefined): boolean {
  if (!b) return false;
  const { source_id: _a, ...pa } = a.payload;
  const { source_id: _b, ...pb } = b.payload;
  return sameJson(pa, pb) && sameVector(a, b);
}

/** Every target page in id order. */
function scanTarget(target: TargetStore): AsyncGenerator<MemoryPoint[]> {
  return scanPages(async (cursor) => {
    const page = await target.readPage(cursor, SCAN_PAGE);
    return [page.points, page.next];
  });
}

/** The target's ids in id order: scans that need no point read no vectors or payloads. */
function scanTargetIds(target: TargetStore): AsyncGenerator<string[]> {
  return scanPages(async (cursor) => {
    const page = await target.readIds(cursor, SCAN_IDS_PAGE);
    return [page.ids, page.next];
  });
}

/**
 * Target ids the source has no row for, from both in id order side by side:
 * memory stays flat however large the store. The target's order is checked
 * as it comes: an id out of order would make the merge call a present
 * point missing, so it stops the run instead.
 */
export async function* targetIdsNotInSource(db: SqliteDb, includeDeleted: boolean, target: TargetStore): AsyncGenerator<string> {
  const inSource = sourcePointIdsInOrder(db, includeDeleted);
  try {
    let sourceId = inSource.next();
    let previous: string | null = null;
    for await (const ids of scanTargetIds(target)) {
      for (const id of ids) {
        if (previous !== null && compareIds(previous, id) >= 0) {
          throw ApplicationFailure.nonRetryable(`The target listed point ${id} after ${previous}, out of id order; nothing was removed.`, 'TargetIdOrder');
        }
        previous = id;
        while (!sourceId.done && compareIds(sourceId.value, id) < 0) sourceId = inSource.next();
        if (sourceId.done || sourceId.value !== id) yield id;
      }
    }
  } finally {
    inSource.return?.();
  }
}

/** Pages by cursor until the last; heartbeats so a long scan shows it is alive. */
async function* scanPages<T>(read: (cursor: string | null) => Promise<[T[], string | null]>): AsyncGenerator<T[]> {
  let cursor: string | null = null;
  do {
    const [items, next] = await read(cursor);
    heartbeatUnlessCancelled();
    yield items;
    cursor = next;
  } while (cursor !== null);
}

/** A scan of a large target outlives its run otherwise: a terminated or timed-out run's cancellation arrives with a heartbeat's reply. */
function heartbeatUnlessCancelled(): void {
  const ctx = Context.current();
  ctx.heartbeat();
  if (ctx.cancellationSignal.aborted) throw new CancelledFailure('Target scan cancelled');
}

async function fingerprintTarget(target: TargetStore): Promise<Record<string, string>> {
  const prints: Record<string, string> = {};
  for await (const page of scanTarget(target)) for (const point of page) prints[point.id] = pointFingerprint(point);
  return prints;
}

async function deleteInBatches(target: TargetStore, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += SCAN_PAGE) await target.deletePoints(ids.slice(i, i + SCAN_PAGE));
}

// --- catch-up -------------------------------------------------------------------

/**
 * Brings the target to the source as `db`'s current read transaction shows it:
 * rows added or changed since `since` go through the copy engine; points whose
 * rows are gone are removed, but only points this run wrote (never one that
 * was in the target before the run). After the switch, `leftAtCutover` holds
 * the target as this run left it, and a point the service has since changed
 * in the target, or created there, is never overwritten or removed.
 */
async function catchUp(
  client: Client,
  plan: SqliteVecPlan,
  db: SqliteDb,
  target: TargetStore,
  since: Watermark,
  leftAtCutover?: Record<string, string>,
): Promise<CatchUpResult> {
  const includeDeleted = plan.source.deleted === 'copy';
  const watermark = watermarkOf(db);
  const before = await pointsBeforeRun(plan);
  const upserted = await copyChangedPoints({
    source: new McpMemorySource(db, includeDeleted, since),
    target,
    channel: catchUpCopyChannel(client),
    alreadyHeld: (point, stored) => sameJson(point.payload, stored.payload) && (plan.reembed !== undefined || sameVector(point, stored)),
    fingerprint: pointFingerprint,
    leftAtCutover,
    reshape: plan.reembed && reembedPoints(plan.reembed),
  });

  const orphans: string[] = [];
  for await (const id of targetIdsNotInSource(db, includeDeleted, target)) {
    if (!before.has(id) && (!leftAtCutover || id in leftAtCutover)) orphans.push(id);
  }
  // After the switch, only orphans as the run left them: one the service has since rewritten is its own.
  const removable = leftAtCutover ? await unchangedSince(target, orphans, leftAtCutover) : orphans;
  await deleteInBatches(target, removable);
  if (leftAtCutover) for (const id of removable) delete leftAtCutover[id];
  return { watermark, upserted, removed: removable.length };
}

// --- rollback -------------------------------------------------------------------

interface CarryBack {
  updated: number;
  inserted: number;
  skipped: string[];
}

/**
 * Copies every target point that is new or changed since cutover (by the
 * cutover record's fingerprints, confirmed against the source row with
 * sameJson) back into the source, then reads each row back and proves it
 * equals the point. Updates `record` so a second pass sees only newer writes.
 */
async function carryBack(db: SqliteDb, target: TargetStore, record: CutoverRecord, unchangedSince?: number): Promise<CarryBack> {
  const reader = new McpMemorySource(db, true);
  const total: CarryBack = { updated: 0, inserted: 0, skipped: [] };
  for await (const page of scanTarget(target)) {
    const candidates = page.filter((p) => record.fingerprints[p.id] !== pointFingerprint(p));
    const notMemories = candidates.filter((p) => typeof p.payload.content !== 'string' || typeof p.payload.content_hash !== 'string');
    if (notMemories.length) {
      fail(
        `Rollback stopped before switching back: target points ${notMemories.slice(0, MAX_IDS).map((p) => p.id).join(', ')} were written after cutover but have no content/content_hash, so they cannot become mcp-memory-service rows. Fix or remove them in the target, then signal rollback again.`,
        'PointNotAMemory',
      );
    }
    const rows = reader.byContentHashes(candidates.map((p) => p.payload.content_hash as string));
    const changed = candidates.filter((p) => !sameMemory(p, rows.get(p.payload.content_hash as string)));
    const written = writeBackPoints(db, changed, unchangedSince);
    const skipped = new Set(written.skipped);
    const reread = reader.byContentHashes(changed.map((p) => p.payload.content_hash as string));
    const different = changed.filter((p) => !skipped.has(p.id) && !sameMemory(p, reread.get(p.payload.content_hash as string)));
    if (different.length) {
      fail(
        `Rollback stopped before switching back: points ${different.slice(0, MAX_IDS).map((p) => p.id).join(', ')} did not read back from the source as written (a field SQLite cannot hold as the target does). The target stays live; fix those points and signal rollback again.`,
        'RoundTripMismatch',
      );
    }
    for (const p of candidates) record.fingerprints[p.id] = pointFingerprint(p);
    total.updated += written.updated;
    total.inserted += written.inserted;
    total.skipped.push(...written.skipped);
  }
  return total;
}

/** Those of `ids` whose points the target still holds as `fingerprints` recorded them. */
async function unchangedSince(target: TargetStore, ids: string[], fingerprints: Record<string, string>): Promise<string[]> {
  const unchanged: string[] = [];
  for (let i = 0; i < ids.length; i += SCAN_PAGE) {
    const points = await target.retrieve(ids.slice(i, i + SCAN_PAGE));
    unchanged.push(...points.filter((p) => pointFingerprint(p) === fingerprints[p.id]).map((p) => p.id));
  }
  return unchanged;
}

/** Ids the cutover left in the target that are gone from it now. */
async function deletedSinceCutover(target: TargetStore, record: CutoverRecord): Promise<string[]> {
  const present = new Set<string>();
  for await (const ids of scanTargetIds(target)) for (const id of ids) present.add(id);
  return Object.keys(record.fingerprints).filter((id) => !present.has(id));
}

export function sqliteVecActivities({ client }: { client: Client }) {
  return {
    async preflightSqliteVec(plan: SqliteVecPlan): Promise<SqliteVecPreflight> {
      await assertPlanFilesSafe(plan, currentWorkflow().workflowId);
      return withSource(plan, async (db) => {
        const problems = integrityProblems(db);
        if (problems.length) fail(`${plan.source.path} fails SQLite's integrity check: ${problems.slice(0, 3).join('; ')}`, 'SourceCorrupt');
        const shape = inspectMcpStore(db);
        if (shape.missing.length) {
          fail(`${plan.source.path} is not an mcp-memory-service database: missing ${shape.missing.join(', ')}.`, 'NotMcpMemoryStore');
        }
        const dimensions = shape.dimensions!;
        const wanted = plan.target.dimensions;
        if (wanted && wanted !== targetDimensions(plan, dimensions)) {
          fail(
            plan.reembed
              ? `target.dimensions is ${wanted} but reembed.dimensions is ${plan.reembed.dimensions}; make them agree.`
              : `Embedding dimension mismatch: the source holds ${dimensions}-dim embeddings but the target wants ${wanted}. Add a 'reembed' section to re-embed with a ${wanted}-dim model.`,
            'DimensionMismatch',
          );
        }
        const includeDeleted = plan.source.deleted === 'copy';
        const source = new McpMemorySource(db, includeDeleted);
        const memories = await source.count();
        const deleted = (db.prepare('SELECT count(*) AS n FROM memories WHERE deleted_at IS NOT NULL').get() as { n: number }).n;
        if (plan.reembed) {
          // One real call before anything is created: a wrong model, key or dimension fails here.
          const probe = await source.readPage(null, 1);
          if (probe.points.length) await reembedPoints(plan.reembed)(probe.points);
        } else {
          const unembedded = (db.prepare(
            `SELECT count(*) AS n FROM memories m WHERE ${liveRowsFilter(includeDeleted)} AND m.id NOT IN (SELECT rowid FROM memory_embeddings)`,
          ).get() as { n: number }).n;
          if (unembedded) fail(`${unembedded} memories have no embedding; add a 'reembed' section to embed them.`, 'MissingEmbeddings');
        }
        const sourceBytes = (await fs.stat(plan.source.path)).size;
        const backupDir = path.dirname(backupPathFor(plan, 'x'));
        const free = await fs.statfs(backupDir).then((s) => s.bavail * s.bsize);
        if (free < 2 * sourceBytes) {
          fail(`Only ${free} bytes free in ${backupDir}; the backup and copy need at least 2× the source (${2 * sourceBytes}).`, 'DiskSpace');
        }
        await withTarget(plan, async (target) => {
          const state = await target.describe().catch((err: Error) =>
            fail(`Target ${describeTarget(plan.target)} is not reachable: ${err.message}`, 'TargetUnreachable'),
          );
          assertTargetUsable(plan.target, state, targetDimensions(plan, dimensions), plan.existingTarget);
        });
        return { memories, deleted, dimensions, users: perUserSourceCounts(db, includeDeleted).length, sourceBytes };
      });
    },

    /**
     * A consistent snapshot of the live source (VACUUM INTO reads in one
     * transaction and never restarts under a writer, unlike the page-wise
     * online backup), written to a new file, checked, then moved into place.
     * Returns the snapshot's watermark: the copy and catch-ups start from it.
     */
    async backupSqliteVec(plan: SqliteVecPlan): Promise<{ path: string; memories: number; watermark: Watermark }> {
      const { workflowId } = currentWorkflow();
      await assertPlanFilesSafe(plan, workflowId);
      const files = runFiles(plan, workflowId);
      if (!(await fileExists(files.backup))) {
        if (!(await fileExists(files.owner))) await fs.writeFile(files.owner, workflowId, { flag: 'wx' });
        await fs.rm(files.partial, { force: true });
        await withSource(plan, async (db) => {
          db.prepare('VACUUM INTO ?').run(files.partial);
        });
        await fs.link(files.partial, files.backup); // fails rather than replace a file that appeared meanwhile
        await fs.rm(files.partial);
      }
      const copy = openReadOnly(files.backup);
      try {
        const problems = [...integrityProblems(copy), ...inspectMcpStore(copy).missing];
        if (problems.length) fail(`Backup ${files.backup} did not verify: ${problems.slice(0, 3).join('; ')}`, 'BackupUnverified');
        const memories = (copy.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n;
        return { path: files.backup, memories, watermark: watermarkOf(copy) };
      } finally {
        copy.close();
      }
    },

    /** Reads everything and simulates the batches; writes nothing anywhere. */
    async dryRunSqliteVec(plan: SqliteVecPlan) {
      return withSource(plan, async (db) => {
        const { memories, batches, readSeconds } = await readEveryPage(new McpMemorySource(db, plan.source.deleted === 'copy'), plan.copy.batchSize);
        // Writes cost about one round trip per batch on top of reading; measure one against the target.
        const target = openTarget(plan.target);
        const pingStarted = Date.now();
        await target.describe().finally(() => target.close());
        const roundTrip = (Date.now() - pingStarted) / 1000;
        const estimatedSeconds = Math.ceil(readSeconds + (batches * roundTrip) / plan.copy.concurrency);
        return { memories, batches, readSeconds: Number(readSeconds.toFixed(2)), estimatedSeconds };
      });
    },

    /** Creates the target, or keeps it under `resume` and records which points it held before this run. */
    async prepareSqliteVecTarget(plan: SqliteVecPlan): Promise<{ created: boolean; kept: number }> {
      const file = runFiles(plan, currentWorkflow().workflowId).targetBefore;
      const recorded = await readJson<TargetBefore>(file);
      if (recorded) return { created: recorded.created, kept: recorded.ids.length };
      const dimensions = await withSource(plan, async (db) => targetDimensions(plan, inspectMcpStore(db).dimensions!));
      const prepared = await prepareTargetStore(plan.target, dimensions, plan.existingTarget);
      const ids: string[] = [];
      if (prepared.kept > 0) {
        await withTarget(plan, async (target) => {
          for await (const page of scanTargetIds(target)) ids.push(...page);
        });
      }
      await writeJson(plan, file, { created: prepared.created, ids } satisfies TargetBefore);
      return { created: prepared.created, kept: ids.length };
    },

    async copySqliteVecPoints(plan: SqliteVecPlan): Promise<CopyResult> {
      return withSource(plan, async (db) =>
        withTarget(plan, (target) =>
          copyPointsResumably({
            source: new McpMemorySource(db, plan.source.deleted === 'copy'),
            target,
            channel: workflowCopyChannel(client),
            transform: plan.reembed ? reembedPoints(plan.reembed) : undefined,
          }),
        ),
      );
    },

    /** Row keys splitting the source into `parts` ranges of equal size, for a partitioned copy (kept in workflow state). */
    async splitSqliteVecCopy(plan: SqliteVecPlan, parts: number): Promise<string[]> {
      return withSource(plan, (db) => new McpMemorySource(db, plan.source.deleted === 'copy').splitKeys(parts));
    },

    /** One range of a partitioned copy: the copy engine over the rows in `range`, with its own heartbeated cursor. */
    async copySqliteVecRange(plan: SqliteVecPlan, range: CopyRange): Promise<CopyResult> {
      return withSource(plan, async (db) =>
        withTarget(plan, (target) =>
          copyRangeResumably(
            {
              source: new McpMemorySource(db, plan.source.deleted === 'copy'),
              target,
              channel: rangeCopyChannel(client),
              transform: plan.reembed ? reembedPoints(plan.reembed) : undefined,
              transformsVectors: plan.reembed !== undefined,
            },
            range,
          ),
        ),
      );
    },

    /**
     * One range of the exhaustive validation: every source row and target
     * point with ids in `range`, side by side in id order. Under a live
     * service, a difference is a failure only if the watermark explains it
     * not: rows added or changed since it (id beyond it, updated_at at or
     * after its `since`), and target points whose row has since been deleted
     * or changed, are counted as written since and caught up at cutover.
     */
    async validateSqliteVecRange(plan: SqliteVecPlan, watermark: Watermark, range: IdRange): Promise<ExhaustiveComparison & { problems: string[] }> {
      const includeDeleted = plan.source.deleted === 'copy';
      return withSource(plan, (db) =>
        withTarget(plan, (target) => {
          const rowOf = db.prepare('SELECT updated_at FROM memories WHERE id = ?');
          const changedSince = (payload: Record<string, unknown>) =>
            (typeof payload.source_id === 'number' && payload.source_id > watermark.maxId) ||
            (typeof payload.updated_at === 'number' && payload.updated_at >= watermark.since);
          const rowGoneOrChanged = (sourceId: unknown) => {
            if (typeof sourceId !== 'number') return false;
            const row = rowOf.get(sourceId) as { updated_at: number | null } | undefined;
            return !row || (row.updated_at ?? 0) >= watermark.since;
          };
          const source = new McpMemorySource(db, includeDeleted);
          // Into pgvector, vectors as they are: both sides digest the stored bytes, and only differing points are read whole.
          const byDigest = target.streamDigestsInIdRange && !plan.reembed;
          return compareEveryPoint(
            byDigest ? source.streamDigestsByPointId(range, DIGEST_PAGE) : source.streamByPointId(range, COMPARE_PAGE),
            byDigest ? target.streamDigestsInIdRange!(range, DIGEST_PAGE) : target.streamIdRange(range, COMPARE_PAGE),
            {
              vectorsCopied: !plan.reembed,
              writtenSince: (point, copy) => (point ? changedSince(point.payload) : rowGoneOrChanged(copy!.payload.source_id)),
              whole: { source: (point) => source.pointAt(point.at!), target: async (point) => (await target.retrieve([point.id]))[0] },
            },
            (compared) => Context.current().heartbeat({ range: range.index, compared }),
          );
        }),
      );
    },

    /** Copies what the service wrote since `since`, and removes what it deleted (see catchUp). */
    async catchUpSqliteVec(plan: SqliteVecPlan, since: Watermark): Promise<CatchUpResult> {
      return withSource(plan, (db) => withTarget(plan, (target) => inSnapshot(db, () => catchUp(client, plan, db, target, since))));
    },

    /**
     * Catches up, then validates in the same read transaction, so counts and
     * samples compare the target with the source at one watermark however
     * fast the service writes. Reports the changes that arrived since.
     */
    async validateSqliteVecCopy(plan: SqliteVecPlan, since: Watermark): Promise<{ report: ValidationReport; watermark: Watermark }> {
      return withSource(plan, (db) =>
        withTarget(plan, async (target) => {
          const includeDeleted = plan.source.deleted === 'copy';
          const source = new McpMemorySource(db, includeDeleted);
          const { caught, report } = await inSnapshot(db, async () => {
            const caught = await catchUp(client, plan, db, target, since);
            const sampleIds = (db
              .prepare(`SELECT m.id FROM memories m WHERE ${liveRowsFilter(includeDeleted)} ORDER BY random() LIMIT ?`)
              .all(plan.validation.sampleSize) as { id: number }[]).map((r) => r.id);
            const report = buildReport({
              sourceCount: await source.count(),
              targetCount: await target.count(),
              perUser: await comparePerUser(perUserSourceCounts(db, includeDeleted), (users) => target.countsMatching(USER_PATH, users)),
              samples: await compareSamples(source.byIds(sampleIds), target, { vectorsCopied: !plan.reembed }),
            });
            return { caught, report };
          });
          const arrivedSince = await new McpMemorySource(db, includeDeleted, caught.watermark).count();
          report.checks.push({
            name: 'live writes',
            ok: true,
            detail: `validated at the source watermark (row ${caught.watermark.maxId}); the catch-up wrote ${caught.upserted} and removed ${caught.removed}; ${arrivedSince} rows added or changed since are copied before and at cutover`,
          });
          return { report, watermark: caught.watermark };
        }),
      );
    },

    /**
     * The switch, converged: catch up, record the target as this run leaves it
     * (the cutover record rollback diffs against), point the live-backend file
     * at the target, then copy what the service wrote to SQLite in between —
     * never over a point it has already written in the target.
     */
    async cutOverSqliteVec(plan: SqliteVecPlan, since: Watermark): Promise<{ points: number; caughtUp: number; removed: number }> {
      const { workflowId } = currentWorkflow();
      const files = runFiles(plan, workflowId);
      return withSource(plan, (db) =>
        withTarget(plan, async (target) => {
          let record = await readJson<CutoverRecord>(files.targetAtCutover);
          const switched = (await readLiveBackend(plan.cutover.file))?.workflowId === workflowId;
          let caughtUp = 0;
          let removed = 0;
          if (!switched || !record) {
            const before = await inSnapshot(db, () => catchUp(client, plan, db, target, since));
            record = { watermark: before.watermark, fingerprints: await fingerprintTarget(target) };
            await writeJson(plan, files.targetAtCutover, record);
            await recordLiveBackend(plan.cutover.file, { ...plan.target, name: describeTarget(plan.target), workflowId }, protectedFiles(plan, files.backup));
            [caughtUp, removed] = [before.upserted, before.removed];
          }
          const cutoverRecord = record;
          await untilQuiet(async () => {
            const gap = await inSnapshot(db, () => catchUp(client, plan, db, target, cutoverRecord.watermark, cutoverRecord.fingerprints));
            cutoverRecord.watermark = gap.watermark;
            await writeJson(plan, files.targetAtCutover, cutoverRecord);
            caughtUp += gap.upserted;
            removed += gap.removed;
            return gap.upserted + gap.removed;
          });
          return { points: Object.keys(record.fingerprints).length, caughtUp, removed };
        }),
      );
    },

    /**
     * After cutover: the live-backend file names the target, and the target
     * answers. (Its contents already converged in the cutover; from here on the
     * service writes and deletes there, so exact counts are no longer a check.)
     */
    async verifySqliteVecCutover(plan: SqliteVecPlan): Promise<{ points: number }> {
      const live = await readLiveBackend(plan.cutover.file);
      if (live?.name !== describeTarget(plan.target)) {
        fail(`${plan.cutover.file} does not name ${describeTarget(plan.target)} as the live backend`, 'VerifyFailed');
      }
      return withTarget(plan, async (target) => ({ points: await target.count() }));
    },

    /**
     * Undo a cutover keeping every write: carry the target's post-cutover
     * writes into the source while the target is live, switch the service
     * back, carry what landed in between (never over a row the service has
     * rewritten since), and keep the target for inspection.
     */
    async rollbackSqliteVec(plan: SqliteVecPlan, request: RollbackRequest | null): Promise<{ summary: string }> {
      const { workflowId } = currentWorkflow();
      const files = runFiles(plan, workflowId);
      const guard = protectedFiles(plan, files.backup);
      const record = await readJson<CutoverRecord>(files.targetAtCutover);
      if (!record) {
        await restoreLiveBackend(plan.cutover.file, workflowId, guard);
        return { summary: `${plan.cutover.file} restored; the target was never live, nothing to carry back.` };
      }
      await assertWritableFile(plan.source.path, 'source.path');
      const db = openWritable(plan.source.path);
      try {
        return await withTarget(plan, async (target) => {
          const live = (await readLiveBackend(plan.cutover.file))?.workflowId === workflowId;
          const carried: CarryBack = { updated: 0, inserted: 0, skipped: [] };
          const add = (pass: CarryBack) => {
            carried.updated += pass.updated;
            carried.inserted += pass.inserted;
            carried.skipped.push(...pass.skipped);
          };
          if (live || record.switchedBackAt === undefined) {
            add(await carryBack(db, target, record));
            record.switchedBackAt = (db.prepare('SELECT max(updated_at) FROM memories').pluck().get() as number | null) ?? 0;
            await writeJson(plan, files.targetAtCutover, record);
            await restoreLiveBackend(plan.cutover.file, workflowId, guard);
          }
          await untilQuiet(async () => {
            const pass = await carryBack(db, target, record, record.switchedBackAt);
            add(pass);
            await writeJson(plan, files.targetAtCutover, record);
            return pass.updated + pass.inserted;
          });
          const deleted = await deletedSinceCutover(target, record);
          const notes = [
            `${plan.cutover.file} restored`,
            `${carried.updated + carried.inserted} post-cutover writes carried back into the source (${carried.updated} rows updated, ${carried.inserted} new) and read back equal`,
            `${describeTarget(plan.target)} kept for inspection`,
          ];
          if (carried.skipped.length) notes.push(`${carried.skipped.length} rows the service rewrote after switching back kept as it wrote them (${carried.skipped.slice(0, MAX_IDS).join(', ')})`);
          if (deleted.length) notes.push(`${deleted.length} memories deleted in the target after cutover are kept in the source (${deleted.slice(0, MAX_IDS).join(', ')})`);
          if (request?.mode === 'restore-backup') notes.push(`restore-backup is not done automatically: the backup is ${files.backup}`);
          return { summary: `${notes.join('; ')}.` };
        });
      } finally {
        db.close();
      }
    },

    /** After a rejection or timeout: a target this run created is dropped; otherwise only the points this run added are removed. */
    async removeSqliteVecRunWrites(plan: SqliteVecPlan): Promise<{ summary: string }> {
      const before = await readJson<TargetBefore>(runFiles(plan, currentWorkflow().workflowId).targetBefore);
      return withTarget(plan, async (target) => {
        if (before?.created) {
          await target.drop();
          return { summary: `Removed ${describeTarget(plan.target)}, which this run created` };
        }
        const kept = new Set(before?.ids ?? []);
        const added: string[] = [];
        for await (const ids of scanTargetIds(target)) added.push(...ids.filter((id) => !kept.has(id)));
        await deleteInBatches(target, added);
        return { summary: `Removed the ${added.length} points this run added to ${describeTarget(plan.target)}; its ${kept.size} earlier points are kept` };
      });
    },
  };
}
