/**
 * Runbook 001 (../shared/seeds/001-sqlite-vec-to-qdrant-guide.md) as a workflow:
 * an mcp-memory-service SQLite-vec store moved to a Qdrant collection or a
 * pgvector table — backed up, copied resumably, validated, approved, cut over,
 * verified, and rolled back on request or on failed verification.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { z } from 'zod';
import { longActivities, quickActivities } from './activity-options';
import type { IdRange, Outcome, ValidationReport } from './messages';
import { MigrationRun, parsePlan } from './migration-run';
import { ApprovalPlan, BatchSize, CatchUpWhileWaiting, CopyPlan, DEFAULT_BATCH_SIZE, TargetSpec, describeTarget, duration, endpointUrl } from './plan-schemas';

export const SqliteVecPlan = z
  .object({
    source: z
      .object({
        /** The mcp-memory-service database file; opened read-only. */
        path: z.string().min(1),
        /** Soft-deleted memories (deleted_at set): left behind, or copied with deleted_at in the payload. */
        deleted: z.enum(['skip', 'copy']).default('skip'),
      })
      .strict(),
    target: TargetSpec,
    /** What to do when the target already holds points. */
    existingTarget: z.enum(['refuse', 'resume', 'overwrite']).default('refuse'),
    /** Re-embed every memory with a new model instead of copying vectors. */
    reembed: z
      .object({
        url: endpointUrl(['http:', 'https:'], 'MEMSHIFT_EMBEDDINGS_API_KEY'),
        model: z.string().min(1),
        dimensions: z.number().int().positive(),
      })
      .strict()
      .optional(),
    /** Where the verified SQLite backup goes; default beside the source. */
    backupPath: z.string().min(1).optional(),
    copy: CopyPlan.extend({ batchSize: BatchSize.optional() }).prefault({}),
    validation: z
      .object({
        sampleSize: z.number().int().min(1).max(10_000).default(200),
        /** After the sample pre-check, compare every point (in `copy.partitions` id ranges, in parallel). */
        exhaustive: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    approval: ApprovalPlan.prefault({}),
    /** After a rejection or approval timeout: remove what was copied, or keep it for a later `resume`. */
    onReject: z.enum(['drop-target', 'keep-target']).default('drop-target'),
    /** The file that names the live backend; cutover rewrites it, rollback restores it. */
    cutover: z.object({ file: z.string().min(1) }).strict(),
    /** While waiting for approval: copy what the service wrote meanwhile every `every`, at most `maxRoundsWhileWaiting` times. */
    catchUp: CatchUpWhileWaiting.prefault({}),
    /** How long after cutover a `rollback` signal is still taken. */
    rollbackWindow: duration.default('0s'),
    dryRun: z.boolean().default(false),
  })
  .strict()
  .transform((plan) => ({ ...plan, copy: { ...plan.copy, batchSize: plan.copy.batchSize ?? DEFAULT_BATCH_SIZE[plan.target.kind] } }));

/** The plan as a person writes it (defaults optional). */
export type SqliteVecPlanInput = z.input<typeof SqliteVecPlan>;
/** The plan after validation, as activities receive it. */
export type SqliteVecPlan = z.output<typeof SqliteVecPlan>;

export interface SqliteVecResult {
  outcome: Outcome;
  report: ValidationReport | null;
  notes: string[];
  copied: number;
  /** Wall time of the copy phase's last attempt, for rates in reports and benchmarks. */
  copySeconds: number;
  backupPath: string | null;
}


export async function sqliteVecMigration(input: SqliteVecPlanInput): Promise<SqliteVecResult> {
  const plan = parsePlan(SqliteVecPlan, input);
  const run = new MigrationRun({
    workflow: 'sqliteVecMigration',
    kind: 'sqlite-vec',
    source: `sqlite://${plan.source.path}`,
    target: describeTarget(plan.target),
    approvers: plan.approval.approvers,
    dryRun: plan.dryRun,
    copy: plan.copy,
  });
  const result = (outcome: Outcome, copied: number, backupPath: string | null, copySeconds = 0) =>
    run.finish(outcome, { copied, copySeconds, backupPath });

  const preflight = await run.phase('preflight', () => quickActivities.preflightSqliteVec(plan));
  run.setCopyTotal(preflight.memories);
  run.note(`Source holds ${preflight.memories} memories (${preflight.dimensions}-dim) from ${preflight.users} users; ${preflight.deleted} soft-deleted.`);

  if (plan.dryRun) {
    const estimate = await run.phase('copy', () => longActivities.dryRunSqliteVec(plan));
    run.note(`Dry run: read ${estimate.memories} memories in ${estimate.batches} batches in ${estimate.readSeconds}s; estimated copy time ${estimate.estimatedSeconds}s. Nothing was written.`);
    return result('dry-run', 0, null);
  }

  const backup = await run.phase('backup', () => quickActivities.backupSqliteVec(plan));
  run.note(`Backup verified: ${backup.path} (${backup.memories} memories).`);
  const prepared = await run.phase('prepare-target', () => quickActivities.prepareSqliteVecTarget(plan));
  if (prepared.kept > 0) run.note(`The target already held ${prepared.kept} points; they are kept whatever happens.`);
  const partitions = plan.copy.partitions ?? 1;
  const copy = await run.phase('copy', () =>
    partitions > 1
      ? run.copyInRanges({
          partitions,
          split: (parts) => quickActivities.splitSqliteVecCopy(plan, parts),
          copyRange: (range) => longActivities.copySqliteVecRange(plan, range),
        })
      : longActivities.copySqliteVecPoints(plan),
  );
  run.note(`Copied ${copy.copied} memories in ${copy.seconds.toFixed(1)}s (${Math.round(copy.writtenThisAttempt / Math.max(copy.seconds, 0.001))}/s).`);
  if (copy.attempt > 1) {
    run.note(`Copy resumed at ${copy.resumedFrom + (copy.alreadyWritten ?? 0)} memories (attempt ${copy.attempt}) and wrote the remaining ${copy.writtenThisAttempt}.`);
  }

  // The service keeps writing: every step below starts from the watermark the last one reached.
  const validated = await run.phase('validate', async () => {
    const checked = await longActivities.validateSqliteVecCopy(plan, backup.watermark);
    // The sample check is the fast pre-check (shown at once); the pass over every point names what differs.
    if (plan.validation.exhaustive && patched('exhaustive-validation')) {
      run.setReport(checked.report);
      const compareRange = (range: IdRange) => longActivities.validateSqliteVecRange(plan, checked.watermark, range);
      return { ...checked, report: await run.validateEveryPoint(partitions, compareRange, checked.report) };
    }
    return checked;
  });
  const report = validated.report;
  run.setReport(report);
  if (!report.ok) {
    throw ApplicationFailure.nonRetryable(
      `Validation failed, cutover blocked; the target is kept for inspection: ${report.checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')}`,
      'ValidationFailed',
    );
  }

  let watermark = validated.watermark;
  const decision = await run.awaitApprovalCatchingUp(plan, async () => {
    watermark = (await longActivities.catchUpSqliteVec(plan, watermark)).watermark;
  });
  if (decision !== 'approved') {
    if (plan.onReject === 'drop-target') {
      const removed = await run.phase('rollback', () => quickActivities.removeSqliteVecRunWrites(plan));
      run.note(`${removed.summary}; the source was never changed.`);
    }
    return result(decision === 'rejected' ? 'rejected' : 'approval-timed-out', copy.copied, backup.path, copy.seconds);
  }

  const outcome = await run.switchOver({
    cutOver: () => longActivities.cutOverSqliteVec(plan, watermark),
    describe: (c) => `Cut over: the target went live with ${c.points} points after a last catch-up of ${c.caughtUp} changed and ${c.removed} deleted memories.`,
    verify: () => quickActivities.verifySqliteVecCutover(plan),
    rollBack: (request) => longActivities.rollbackSqliteVec(plan, request),
    rollbackWindow: plan.rollbackWindow,
  });
  return result(outcome, copy.copied, backup.path, copy.seconds);
}
