/**
 * Activities of the SQLite-vec runbook (workflows/sqlite-vec-migration.ts).
 * Each takes the validated plan (paths and URLs only) and returns counts,
 * paths and reports — never memories.
 */
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import Database from 'better-sqlite3';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ValidationReport } from '../workflows/messages';
import { describeTarget } from '../workflows/plan-schemas';
import type { SqliteVecPlan } from '../workflows/sqlite-vec-migration';
import { currentWorkflow } from './context';
import { workflowCopyChannel } from './copy-channel';
import { copyPointsResumably, type CopyResult } from './copy-engine';
import { recordLiveBackend, restoreLiveBackend, readLiveBackend } from './cutover';
import { reembedPoints } from './embeddings';
import { McpMemorySource, inspectMcpStore, liveRowsFilter, openReadOnly, type SqliteDb } from './stores/sqlite';
import { dropTargetStore, openTarget, prepareTargetStore, assertTargetUsable } from './targets';
import { buildReport, comparePerUser, compareSamples, type PerUserCount } from './validation';

const USER_PATH = 'metadata.user_id';

export interface SqliteVecPreflight {
  memories: number;
  deleted: number;
  dimensions: number;
  users: number;
  sourceBytes: number;
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

function integrityProblems(db: SqliteDb): string[] {
  const rows = db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
}

/** mcp-memory-service holds a write lock while it writes; a migration must not race it. */
function assertNoWriter(file: string): void {
  const probe = new Database(file, { timeout: 0 });
  try {
    probe.exec('BEGIN IMMEDIATE');
    probe.exec('ROLLBACK');
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      fail(`${file} is locked by another process that is writing to it; stop mcp-memory-service (see \`lsof ${file}\`) and start again.`, 'SourceLocked');
    }
    throw err;
  } finally {
    probe.close();
  }
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

function countRows(db: SqliteDb): { memories: number; embeddings: number } {
  const memories = (db.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n;
  const embeddings = (db.prepare('SELECT count(*) AS n FROM memory_embeddings').get() as { n: number }).n;
  return { memories, embeddings };
}

export function sqliteVecActivities({ client }: { client: Client }) {
  return {
    async preflightSqliteVec(plan: SqliteVecPlan): Promise<SqliteVecPreflight> {
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
        assertNoWriter(plan.source.path);
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
        const target = openTarget(plan.target);
        try {
          const state = await target.describe().catch((err: Error) =>
            fail(`Target ${describeTarget(plan.target)} is not reachable: ${err.message}`, 'TargetUnreachable'),
          );
          assertTargetUsable(plan.target, state, targetDimensions(plan, dimensions), plan.existingTarget);
        } finally {
          await target.close();
        }
        return { memories, deleted, dimensions, users: perUserSourceCounts(db, includeDeleted).length, sourceBytes };
      });
    },

    /** SQLite online backup to a named file, verified by integrity check and row counts. */
    async backupSqliteVec(plan: SqliteVecPlan): Promise<{ path: string; memories: number }> {
      const { workflowId } = currentWorkflow();
      const file = backupPathFor(plan, workflowId);
      return withSource(plan, async (db) => {
        await db.backup(file);
        const copy = openReadOnly(file);
        try {
          const problems = integrityProblems(copy);
          const [expected, actual] = [countRows(db), countRows(copy)];
          if (problems.length || expected.memories !== actual.memories || expected.embeddings !== actual.embeddings) {
            throw new Error(`Backup ${file} did not verify: ${problems.join('; ') || `${actual.memories}/${expected.memories} memories, ${actual.embeddings}/${expected.embeddings} embeddings`}`);
          }
          return { path: file, memories: actual.memories };
        } finally {
          copy.close();
        }
      });
    },

    /** Reads everything and simulates the batches; writes nothing anywhere. */
    async dryRunSqliteVec(plan: SqliteVecPlan) {
      return withSource(plan, async (db) => {
        const source = new McpMemorySource(db, plan.source.deleted === 'copy');
        const started = Date.now();
        let cursor: string | null = null;
        let memories = 0;
        let batches = 0;
        do {
          const page = await source.readPage(cursor, plan.copy.batchSize);
          memories += page.points.length;
          batches += page.points.length ? 1 : 0;
          cursor = page.next;
        } while (cursor !== null);
        const readSeconds = (Date.now() - started) / 1000;
        // Writes cost about one round trip per batch on top of reading; measure one against the target.
        const target = openTarget(plan.target);
        const pingStarted = Date.now();
        await target.describe().finally(() => target.close());
        const roundTrip = (Date.now() - pingStarted) / 1000;
        const estimatedSeconds = Math.ceil(readSeconds + (batches * roundTrip) / plan.copy.concurrency);
        return { memories, batches, readSeconds: Number(readSeconds.toFixed(2)), estimatedSeconds };
      });
    },

    async prepareSqliteVecTarget(plan: SqliteVecPlan) {
      const dimensions = await withSource(plan, async (db) => targetDimensions(plan, inspectMcpStore(db).dimensions!));
      return prepareTargetStore(plan.target, dimensions, plan.existingTarget);
    },

    async copySqliteVecPoints(plan: SqliteVecPlan): Promise<CopyResult> {
      return withSource(plan, async (db) => {
        const target = openTarget(plan.target);
        try {
          return await copyPointsResumably({
            source: new McpMemorySource(db, plan.source.deleted === 'copy'),
            target,
            channel: workflowCopyChannel(client),
            transform: plan.reembed ? reembedPoints(plan.reembed) : undefined,
          });
        } finally {
          await target.close();
        }
      });
    },

    /** Exact totals, per-user counts, and sampled memories compared field by field. */
    async validateSqliteVecCopy(plan: SqliteVecPlan): Promise<ValidationReport> {
      return withSource(plan, async (db) => {
        const includeDeleted = plan.source.deleted === 'copy';
        const source = new McpMemorySource(db, includeDeleted);
        const target = openTarget(plan.target);
        try {
          const sampleIds = (db
            .prepare(`SELECT m.id FROM memories m WHERE ${liveRowsFilter(includeDeleted)} ORDER BY random() LIMIT ?`)
            .all(plan.validation.sampleSize) as { id: number }[]).map((r) => r.id);
          return buildReport({
            sourceCount: await source.count(),
            targetCount: await target.count(),
            perUser: await comparePerUser(perUserSourceCounts(db, includeDeleted), (user) => target.countMatching(USER_PATH, user)),
            samples: await compareSamples(source.byIds(sampleIds), target, { vectorsCopied: !plan.reembed }),
          });
        } finally {
          await target.close();
        }
      });
    },

    async recordCutover(plan: SqliteVecPlan): Promise<{ file: string }> {
      const { workflowId } = currentWorkflow();
      await recordLiveBackend(plan.cutover.file, { ...plan.target, name: describeTarget(plan.target), workflowId });
      return { file: plan.cutover.file };
    },

    /** After cutover: the live-backend file names the target, and the target answers with every memory. */
    async verifySqliteVecCutover(plan: SqliteVecPlan): Promise<{ points: number }> {
      const live = await readLiveBackend(plan.cutover.file);
      if (live?.name !== describeTarget(plan.target)) {
        fail(`${plan.cutover.file} does not name ${describeTarget(plan.target)} as the live backend`, 'VerifyFailed');
      }
      return withSource(plan, async (db) => {
        const source = new McpMemorySource(db, plan.source.deleted === 'copy');
        const target = openTarget(plan.target);
        try {
          const [expected, points] = [await source.count(), await target.count()];
          if (points !== expected) fail(`The live target holds ${points} memories, expected ${expected}`, 'VerifyFailed');
          const probe = await source.readPage(null, 10);
          const samples = await compareSamples(probe.points, target, { vectorsCopied: !plan.reembed });
          if (samples.errors.length) fail(`Sample read from the live target differs: ${samples.errors.join('; ')}`, 'VerifyFailed');
          return { points };
        } finally {
          await target.close();
        }
      });
    },

    /** Undo: the live-backend file as it was, the target removed, the source restored if it was damaged. */
    async rollbackSqliteVec(plan: SqliteVecPlan, backupPath: string): Promise<{ summary: string }> {
      await restoreLiveBackend(plan.cutover.file, currentWorkflow().workflowId);
      await dropTargetStore(plan.target);
      const source = openReadOnly(plan.source.path);
      const backup = openReadOnly(backupPath);
      let damaged: boolean;
      try {
        const [now, then] = [countRows(source), countRows(backup)];
        damaged = integrityProblems(source).length > 0 || now.memories < then.memories || now.embeddings < then.embeddings;
      } finally {
        source.close();
        backup.close();
      }
      if (damaged) await fs.copyFile(backupPath, plan.source.path);
      return {
        summary: `${plan.cutover.file} restored, ${describeTarget(plan.target)} removed, source ${damaged ? `restored from ${backupPath}` : 'intact'}.`,
      };
    },

    async dropTarget(target: SqliteVecPlan['target']): Promise<void> {
      await dropTargetStore(target);
    },
  };
}
