/**
 * Runbook 000 (../shared/seeds/000-mem0-qdrant-rebuild-runbook.md) as a
 * workflow: mem0 v1 Qdrant collections rebuilt into new collections with
 * mem0 2.x's schema (a `bm25` sparse slot, keyword indexes on the scope ids),
 * the BM25 vectors backfilled, writes made meanwhile caught up, validated,
 * approved, cut over by one atomic alias swap, verified, and rolled back on
 * request until the plan's retention ends. Writes keep arriving throughout:
 * validation holds the copy to the watermark the last catch-up recorded,
 * catch-ups continue while approval waits and right after the swap, and a
 * rollback carries the new collections' post-cutover writes back into the
 * legacy ones before the aliases move back. Nothing else ever writes legacy.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { z } from 'zod';
import { longActivities, quickActivities } from './activity-options';
import type { CarryBackCounts, CatchUpCounts } from '../activities/qdrant-rebuild';
import type { IdRange, Outcome, RollbackRequest, ValidationReport } from './messages';
import { MigrationRun, errorMessage, parsePlan } from './migration-run';
import { ApprovalPlan, CatchUpWhileWaiting, CopyPlan, collectionName, duration, endpointUrl, isZeroDuration, qdrantUrl } from './plan-schemas';

/** mem0 2.x queries these scope ids with keyword filters. */
const MEM0_SCOPE_INDEXES = ['user_id', 'agent_id', 'run_id', 'actor_id'];

const CollectionPair = z
  .object({
    /** The v1 collection, e.g. `mem0` or `mem0_entities`; only read. */
    source: collectionName,
    /** The new collection, created by the workflow (or empty beforehand). */
    target: collectionName,
    /** The name clients use; cutover points it at `target`, rollback back at `source`. */
    alias: collectionName,
    /** Payload field BM25 is computed from when a point has no `text_lemmatized`; default the plan's textField. */
    textField: z.string().min(1).optional(),
  })
  .strict();

export const QdrantRebuildPlan = z
  .object({
    qdrant: z
      .object({
        url: qdrantUrl,
        /** Qdrant's storage directory as the worker sees it; when set, preflight checks its free space. */
        storagePath: z.string().min(1).optional(),
      })
      .strict(),
    collections: z.array(CollectionPair).min(1),
    schema: z
      .object({
        /** Dense vector config; copied from each source, and checked against these when given. */
        dense: z
          .object({
            size: z.number().int().positive().optional(),
            distance: z.enum(['Cosine', 'Euclid', 'Dot', 'Manhattan']).optional(),
          })
          .strict()
          .optional(),
        /** Sparse vectors to add (computed during the copy, `modifier: idf`); [] for none. */
        sparse: z.array(z.literal('bm25')).default(['bm25']),
        /** Keyword payload indexes on every target. */
        keywordIndexes: z.array(z.string().min(1)).default(MEM0_SCOPE_INDEXES),
      })
      .strict()
      .prefault({}),
    /** mem0's memory text; BM25 uses `text_lemmatized` instead where a point has it. */
    textField: z.string().min(1).default('data'),
    /** Where the per-user baseline and the Neo4j export are written (on the worker). */
    workDir: z.string().min(1),
    copy: CopyPlan.prefault({}),
    validation: z
      .object({
        sampleSize: z.number().int().min(1).max(10_000).default(200),
        /** After the sample pre-check, compare every point (in `copy.partitions` id ranges, in parallel). */
        exhaustive: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    catchUp: z
      .object({
        /** Catch-up passes before approval: each copies what changed in the sources, then validates again. */
        maxRounds: z.number().int().min(1).max(20).default(3),
      })
      .extend(CatchUpWhileWaiting.shape)
      .strict()
      .prefault({}),
    approval: ApprovalPlan.prefault({}),
    /** After a rejection or approval timeout: remove the new collections, or keep them. */
    onReject: z.enum(['drop-target', 'keep-target']).default('drop-target'),
    /** A Neo4j graph store (mem0 v1 graph memory) exported before it is decommissioned. */
    graph: z
      .object({
        uri: endpointUrl(['bolt:', 'bolt+s:', 'bolt+ssc:', 'neo4j:', 'neo4j+s:', 'neo4j+ssc:'], 'NEO4J_USER/NEO4J_PASSWORD'),
        database: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /** How long after cutover a `rollback` is still taken; keep snapshots and the export as longActivities. */
    retention: duration.default('30d'),
    rollback: z
      .object({
        /** Serve the snapshot (recovered as `<source>_rollback`) instead of the legacy collection. */
        fromSnapshot: z.boolean().default(false),
        /** Restore the Neo4j export into graph.uri, which must then be empty. */
        restoreGraph: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /** Preflight only: checks, counts and the baseline; writes nothing to Qdrant. */
    dryRun: z.boolean().default(false),
  })
  .strict()
  .superRefine((plan, ctx) => {
    const seen = new Map<string, string>();
    plan.collections.forEach((pair, i) => {
      for (const role of ['source', 'target', 'alias'] as const) {
        const earlier = seen.get(pair[role]);
        if (earlier) ctx.addIssue({ code: 'custom', path: ['collections', i, role], message: `'${pair[role]}' is already used as ${earlier}` });
        seen.set(pair[role], `collections[${i}].${role}`);
      }
    });
    if (plan.rollback.restoreGraph && !plan.graph) {
      ctx.addIssue({ code: 'custom', path: ['rollback', 'restoreGraph'], message: 'needs a graph section to restore from' });
    }
  });

export type QdrantRebuildPlanInput = z.input<typeof QdrantRebuildPlan>;
export type QdrantRebuildPlan = z.output<typeof QdrantRebuildPlan>;

export interface QdrantRebuildResult {
  outcome: Outcome;
  report: ValidationReport | null;
  notes: string[];
  copied: number;
  caughtUp: CatchUpCounts;
  /** Post-cutover writes a rollback carried into the legacy collections. */
  carriedBack: CarryBackCounts | null;
  snapshots: { collection: string; name: string; checksum: string | null }[];
  graphExport: string | null;
}

const noCatchUp: CatchUpCounts = { added: 0, changed: 0, deleted: 0 };
const addCounts = (a: CatchUpCounts, b: CatchUpCounts): CatchUpCounts => ({
  added: a.added + b.added,
  changed: a.changed + b.changed,
  deleted: a.deleted + b.deleted,
});
const describeCatchUp = (c: CatchUpCounts) => `${c.added} added, ${c.changed} changed, ${c.deleted} deleted`;

export async function qdrantCollectionRebuild(input: QdrantRebuildPlanInput): Promise<QdrantRebuildResult> {
  const plan = parsePlan(QdrantRebuildPlan, input);
  const host = new URL(plan.qdrant.url).host;
  const run = new MigrationRun({
    workflow: 'qdrantCollectionRebuild',
    kind: 'qdrant-rebuild',
    source: `qdrant://${host}/${plan.collections.map((c) => c.source).join(',')}`,
    target: `qdrant://${host}/${plan.collections.map((c) => c.target).join(',')}`,
    approvers: plan.approval.approvers,
    dryRun: plan.dryRun,
    copy: plan.copy,
  });
  let copied = 0;
  let caughtUp = noCatchUp;
  let carriedBack: CarryBackCounts | null = null;
  let snapshots: QdrantRebuildResult['snapshots'] = [];
  let graphExport: string | null = null;
  const result = (outcome: Outcome) => run.finish(outcome, { copied, caughtUp, carriedBack, snapshots, graphExport });

  const preflight = await run.phase('preflight', () => longActivities.preflightQdrantRebuild(plan));
  run.setCopyTotal(preflight.points);
  preflight.notes.forEach((note) => run.note(note));
  if (plan.dryRun) return result('dry-run');

  await run.phase('backup', async () => {
    snapshots = await quickActivities.snapshotSourceCollections(plan);
    run.note(`Snapshots kept: ${snapshots.map((s) => `${s.collection}/${s.name}`).join(', ')}.`);
    if (plan.graph) {
      const graph = await longActivities.exportGraphForDecommission(plan);
      graphExport = graph.file;
      run.note(`Neo4j graph exported to ${graph.file}: ${graph.nodes} nodes, ${graph.relationships} relationships (manifest ${graph.manifestFile}).`);
    }
  });

  const { created } = await run.phase('prepare-target', () => quickActivities.prepareRebuildTargets(plan, preflight.vectors));

  const partitions = plan.copy.partitions ?? 1;
  await run.phase('copy', async () => {
    for (let index = 0; index < plan.collections.length; index++) {
      const dense = preflight.vectors[index];
      const copy =
        partitions > 1
          ? await run.copyInRanges({
              partitions,
              split: (parts) => quickActivities.splitRebuildCopy(plan, index, dense, parts),
              copyRange: (range) => longActivities.copyRebuildRange(plan, index, dense, range),
            })
          : await longActivities.copyRebuildCollection(plan, index, dense, { copied, total: preflight.points });
      copied += copy.copied;
      if (copy.attempt > 1) {
        run.note(`Copy of ${plan.collections[index].source} resumed at ${copy.resumedFrom + (copy.alreadyWritten ?? 0)} points (attempt ${copy.attempt}) and wrote the remaining ${copy.writtenThisAttempt}.`);
      }
    }
  });

  const catchUp = async (afterSwap = false) => {
    const counts = await longActivities.catchUpRebuildTargets(plan, preflight.vectors, afterSwap);
    caughtUp = addCounts(caughtUp, counts);
    return counts;
  };

  // Validation holds the targets to the watermark each round records, so writes that land meanwhile
  // never fail it; a failing round is repeated only while catch-ups still find writes to repair with.
  const report = await run.phase('validate', async () => {
    let latest: ValidationReport | null = null;
    let foundWrites = true;
    for (let round = 1; round <= plan.catchUp.maxRounds && !latest?.ok && (round === 1 || foundWrites); round++) {
      const counts = await catchUp();
      foundWrites = counts.added + counts.changed + counts.deleted > 0;
      run.note(`Catch-up round ${round}: ${describeCatchUp(counts)} since the copy read them.`);
      latest = await longActivities.validateRebuild(plan, preflight.vectors, caughtUp);
      run.setReport(latest);
    }
    // The sample and watermark checks are the fast pre-check (shown at once); the pass over every point names what differs.
    if (plan.validation.exhaustive && patched('exhaustive-validation')) {
      for (const [index, pair] of plan.collections.entries()) {
        const compareRange = (range: IdRange) => longActivities.validateRebuildRange(plan, index, preflight.vectors[index], range);
        latest = await run.validateEveryPoint(partitions, compareRange, latest!, plan.collections.length > 1 ? pair.target : undefined);
      }
      run.setReport(latest!);
    }
    return latest!;
  });
  if (!report.ok) {
    throw ApplicationFailure.nonRetryable(
      `Validation failed, cutover blocked; the new collections are kept for inspection: ${report.checks.filter((c) => !c.ok).map((c) => c.detail).join('; ')}`,
      'ValidationFailed',
    );
  }

  const decision = await run.awaitCutoverApproval(plan.approval.timeout, {
    every: plan.catchUp.every,
    maxRounds: plan.catchUp.maxRoundsWhileWaiting,
    run: async (round) => {
      const counts = await catchUp();
      if (counts.added + counts.changed + counts.deleted > 0) run.note(`Caught up while awaiting approval (round ${round}): ${describeCatchUp(counts)}.`);
    },
  });
  if (decision !== 'approved') {
    if (plan.onReject === 'drop-target') {
      // Only collections this run created: an empty one that existed before keeps existing (with this run's copy in it).
      await run.phase('rollback', () => quickActivities.dropRebuildTargets(plan, created));
      const kept = plan.collections.map((c) => c.target).filter((name) => !created.includes(name));
      run.note(`Removed ${created.join(', ') || 'nothing'}${kept.length ? `; kept ${kept.join(', ')}, which existed before this run` : ''}; the sources were never changed.`);
    }
    return result(decision === 'rejected' ? 'rejected' : 'approval-timed-out');
  }

  // Carry back, move the aliases, carry back again: writes that reached the new collections while the
  // aliases moved are carried too, and after that nothing writes them.
  const rollback = async (why: string, request: RollbackRequest | null = null) => {
    await run.phase('rollback', async () => {
      const first = await longActivities.carryBackPostCutoverWrites(plan, preflight.vectors);
      const undone = await longActivities.rollbackRebuild(plan, snapshots, request);
      const last = await longActivities.carryBackPostCutoverWrites(plan, preflight.vectors);
      carriedBack = { ...addCounts(first, last), conflicts: last.conflicts, conflictIds: last.conflictIds };
      run.note(`Rolled back (${why}): ${undone.summary}`);
      run.note(`Post-cutover writes carried back into the legacy collections: ${describeCatchUp(carriedBack)}.`);
      if (last.conflicts > 0) {
        run.note(
          `${last.conflicts} points were written both in the new and (after cutover) in the legacy collections; legacy keeps its version, ` +
            `the new collections keep theirs for a person to reconcile: ${last.conflictIds.join(', ')}.`,
        );
      }
    });
    return result('rolled-back');
  };

  await run.phase('cutover', async () => {
    const last = await catchUp();
    run.note(`Final catch-up before the alias swap: ${describeCatchUp(last)}.`);
    const swap = await quickActivities.swapServingAliases(plan);
    run.note(`Cutover: ${swap.summary}`);
    const between = await catchUp(true);
    run.note(`Catch-up right after the swap: ${describeCatchUp(between)}. Caught up in all: ${describeCatchUp(caughtUp)}.`);
  });
  try {
    const verified = await run.phase('verify', () => quickActivities.verifyRebuildCutover(plan));
    run.note(`Verified through the aliases: ${verified.summary}`);
  } catch (err) {
    return rollback(`verification failed: ${errorMessage(err)}`);
  }
  if (!isZeroDuration(plan.retention)) {
    const undone = await run.rollbackWindow(plan.retention, rollback);
    if (undone) return undone;
  }
  return result('cut-over');
}
