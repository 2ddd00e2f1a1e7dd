/**
 * Runbook 004 (../shared/seeds/004-second-brain-v3-pgvector.md) as a workflow:
 * a Second Brain v2 database (v2.0 or v2.8, optionally with the v1 Qdrant
 * collection's vectors) into a new v3 database with one MemoryCreated event
 * per memory — backed up with pg_dump, copied resumably, indexed, validated
 * memory by memory, approved, cut over, verified, and rolled back on request
 * or on failed verification.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { longActivities, quickActivities } from './activity-options';
import type { Outcome, ValidationReport } from './messages';
import { MigrationRun, parsePlan } from './migration-run';
import { SecondBrainPlan, describeDatabase, type SecondBrainPlanInput } from './second-brain-plan';

export { SecondBrainPlan, type SecondBrainPlanInput } from './second-brain-plan';

export interface SecondBrainResult {
  outcome: Outcome;
  report: ValidationReport | null;
  notes: string[];
  copied: number;
  copySeconds: number;
  backupPath: string | null;
}

export async function secondBrainV3Migration(input: SecondBrainPlanInput): Promise<SecondBrainResult> {
  const plan = parsePlan(SecondBrainPlan, input);
  const run = new MigrationRun({
    workflow: 'secondBrainV3Migration',
    kind: 'second-brain-v3',
    source: describeDatabase(plan.source.url),
    target: describeDatabase(plan.target.url),
    approvers: plan.approval.approvers,
    dryRun: plan.dryRun,
    copy: plan.copy,
  });
  const result = (outcome: Outcome, copied: number, backupPath: string | null, copySeconds = 0) => run.finish(outcome, { copied, copySeconds, backupPath });

  const preflight = await run.phase('preflight', () => quickActivities.preflightSecondBrain(plan));
  run.setCopyTotal(preflight.memories);
  run.note(
    `Source is Second Brain ${preflight.layout} with ${preflight.memories} memories (${preflight.dimensions}-dim); ` +
      `${preflight.withoutEmbedding} without an embedding, ${preflight.filledFromQdrant} of them filled from the v1 collection; ` +
      `target database ${preflight.target === 'missing' ? 'will be created' : `is ${preflight.target}`}.`,
  );
  if (preflight.stillWithoutEmbeddingCount > 0) {
    run.note(`${preflight.stillWithoutEmbeddingCount} memories will have no embedding in v3: ${preflight.stillWithoutEmbedding.join(', ')}${preflight.stillWithoutEmbeddingCount > preflight.stillWithoutEmbedding.length ? ', …' : ''}.`);
  }

  if (plan.dryRun) {
    const estimate = await run.phase('copy', () => longActivities.dryRunSecondBrain(plan));
    run.note(`Dry run: read ${estimate.memories} memories in ${estimate.batches} batches in ${estimate.readSeconds}s; estimated copy time ${estimate.estimatedSeconds}s. Nothing was written.`);
    return result('dry-run', 0, null);
  }

  const backup = await run.phase('backup', () => longActivities.backupSecondBrainSource(plan));
  run.note(`Backup verified: ${backup.path} (${backup.bytes} bytes, ${backup.entries} entries in pg_restore --list).`);
  const prepared = await run.phase('prepare-target', () => quickActivities.prepareSecondBrainTarget(plan));
  if (prepared.createdDatabase) run.note('Created the v3 database.');
  if (prepared.kept > 0) run.note(`The target already held ${prepared.kept} memories; they are kept whatever happens.`);

  const copy = await run.phase('copy', async () => {
    const copied = await longActivities.copySecondBrainMemories(plan);
    const indexed = await longActivities.indexSecondBrainTarget(plan);
    run.note(`Built the ivfflat index with lists = ${indexed.lists}${plan.memories.linksField ? `; ${indexed.links} links from metadata.${plan.memories.linksField}` : ''}.`);
    return copied;
  });
  run.note(`Copied ${copy.copied} memories with their events in ${copy.seconds.toFixed(1)}s (${Math.round(copy.writtenThisAttempt / Math.max(copy.seconds, 0.001))}/s).`);
  if (copy.resumedFrom > 0) run.note(`Copy resumed at ${copy.resumedFrom} memories (attempt ${copy.attempt}) and wrote the remaining ${copy.writtenThisAttempt}.`);

  const validated = await run.phase('validate', () => longActivities.validateSecondBrainCopy(plan, prepared.watermark));
  run.setReport(validated.report);
  if (!validated.report.ok) {
    throw ApplicationFailure.nonRetryable(
      `Validation failed, cutover blocked; the v3 database is kept for inspection: ${validated.report.checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')}`,
      'ValidationFailed',
    );
  }

  let watermark = validated.watermark;
  const decision = await run.awaitApprovalCatchingUp(plan, async () => {
    watermark = (await longActivities.catchUpSecondBrain(plan, watermark)).watermark;
  });
  if (decision !== 'approved') {
    if (plan.onReject === 'drop-target') {
      const removed = await run.phase('rollback', () => quickActivities.removeSecondBrainRunWrites(plan));
      run.note(`${removed.summary}; the v2 database was never changed.`);
    }
    return result(decision === 'rejected' ? 'rejected' : 'approval-timed-out', copy.copied, backup.path, copy.seconds);
  }

  const outcome = await run.switchOver({
    cutOver: () => longActivities.cutOverSecondBrain(plan, watermark),
    describe: (c) => `Cut over: v3 went live with ${c.memories} memories after a last catch-up of ${c.caughtUp} changed and ${c.removed} deleted memories.`,
    verify: () => quickActivities.verifySecondBrainCutover(plan),
    rollBack: (request) => longActivities.rollbackSecondBrain(plan, request),
    rollbackWindow: plan.rollbackWindow,
  });
  return result(outcome, copy.copied, backup.path, copy.seconds);
}
