/**
 * Runbook 003 (../shared/seeds/003-memorygraph-backend-migration.md) as a
 * workflow: memorygraph's memories and typed relationships moved between
 * SQLite, Neo4j, FalkorDB and export files, any direction — the target backed
 * up, memories then relationships copied resumably by id, every item
 * validated, approved, cut over, verified, and rolled back on request or on
 * failed verification, keeping every write.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { longActivities, quickActivities } from './activity-options';
import { MemoryGraphPlan, describeEndpoint, type MemoryGraphPlanInput } from './memory-graph-plan';
import type { Outcome, ValidationReport } from './messages';
import { MigrationRun, parsePlan } from './migration-run';

export { MemoryGraphPlan, type MemoryGraphPlanInput };

export interface MemoryGraphResult {
  outcome: Outcome;
  report: ValidationReport | null;
  notes: string[];
  memories: number;
  relationships: number;
  /** Wall time of the two copies' last attempts, for rates in reports and benchmarks. */
  copySeconds: number;
  backup: string | null;
}

export async function memoryGraphMigration(input: MemoryGraphPlanInput): Promise<MemoryGraphResult> {
  const plan = parsePlan(MemoryGraphPlan, input);
  const run = new MigrationRun({
    workflow: 'memoryGraphMigration',
    kind: 'memorygraph',
    source: describeEndpoint(plan.source),
    target: describeEndpoint(plan.target),
    approvers: plan.approval.approvers,
    dryRun: plan.dryRun,
    copy: plan.copy,
  });
  let copied = { memories: 0, relationships: 0, seconds: 0 };
  let backup: string | null = null;
  const result = (outcome: Outcome) => run.finish(outcome, { memories: copied.memories, relationships: copied.relationships, copySeconds: copied.seconds, backup });

  const preflight = await run.phase('preflight', () => quickActivities.preflightMemoryGraph(plan));
  const { source, target } = preflight;
  run.setCopyTotal(source.memories + source.relationships);
  const byType = Object.entries(source.relationshipsByType).map(([type, n]) => `${type} ${n}`).join(', ');
  run.note(`Source (${source.layout}) holds ${source.memories} memories and ${source.relationships} relationships of ${Object.keys(source.relationshipsByType).length} types${byType ? `: ${byType}` : ''}.`);
  if (target.exists) run.note(`Target holds ${target.memories} memories and ${target.relationships} relationships before this run; they are kept whatever happens.`);

  if (plan.dryRun) {
    const estimate = await run.phase('copy', () => longActivities.dryRunMemoryGraph(plan));
    run.note(`Dry run: read ${estimate.memories} memories and ${estimate.relationships} relationships in ${estimate.readSeconds}s; estimated copy time ${estimate.estimatedSeconds}s. Nothing was written.`);
    return result('dry-run');
  }

  const backedUp = await run.phase('backup', () => quickActivities.backupMemoryGraphTarget(plan));
  backup = backedUp.backup;
  if (backup) run.note(`Target backed up to ${backup} (${backedUp.memories} memories, ${backedUp.relationships} relationships), verified.`);
  await run.phase('prepare-target', () => quickActivities.prepareMemoryGraphTarget(plan));

  await run.phase('copy', async () => {
    for (const entity of ['memories', 'relationships'] as const) {
      const copy = await longActivities.copyMemoryGraph(plan, entity);
      copied = { ...copied, [entity]: copy.copied, seconds: copied.seconds + copy.seconds };
      run.note(`Copied ${copy.copied} ${entity} in ${copy.seconds.toFixed(1)}s${copy.resumedFrom > 0 ? ` (resumed at ${copy.resumedFrom}, attempt ${copy.attempt})` : ''}.`);
    }
  });

  const validated = await run.phase('validate', () => longActivities.validateMemoryGraph(plan));
  run.setReport(validated.report);
  if (!validated.report.ok) {
    throw ApplicationFailure.nonRetryable(
      `Validation failed, cutover blocked; the target is kept for inspection: ${validated.report.errors.join('; ')}`,
      'ValidationFailed',
    );
  }

  const decision = await run.awaitApprovalCatchingUp(plan, async () => {
    await longActivities.catchUpMemoryGraph(plan);
  });
  if (decision !== 'approved') {
    if (plan.onReject === 'remove-run-writes') {
      const removed = await run.phase('rollback', () => quickActivities.removeMemoryGraphRunWrites(plan));
      run.note(`${removed.summary}; the source was never changed.`);
    }
    return result(decision === 'rejected' ? 'rejected' : 'approval-timed-out');
  }

  if (plan.target.kind === 'export-file') {
    // Nothing goes live: the file is written and read back, and there is nothing to roll back.
    const written = await run.phase('cutover', () => longActivities.cutOverMemoryGraph(plan));
    run.note(`Wrote ${written.file}: ${written.memories} memories and ${written.relationships} relationships.`);
    await run.phase('verify', () => quickActivities.verifyMemoryGraphCutover(plan));
    return result('cut-over');
  }
  const outcome = await run.switchOver({
    cutOver: () => longActivities.cutOverMemoryGraph(plan),
    describe: (c) => `Cut over: ${describeEndpoint(plan.target)} went live with ${c.memories} memories and ${c.relationships} relationships after a last catch-up of ${c.caughtUp} changes.`,
    verify: () => quickActivities.verifyMemoryGraphCutover(plan),
    rollBack: (request) => longActivities.rollbackMemoryGraph(plan, request),
    rollbackWindow: plan.rollbackWindow,
  });
  return result(outcome);
}
