/**
 * Runbook 002 (../shared/seeds/002-openmemory-multi-tenant-schema.md) as a
 * workflow: an OpenMemory database (SQLite file or PostgreSQL schema) brought
 * to a schema version — planned, backed up, approved, applied one version per
 * transaction, verified — while OpenMemory keeps writing.
 *
 * Nothing written is lost: each version is applied under the tables' write
 * locks and commits only with every row still there; a failed verification
 * or a rollback request runs the versions' reverse, which keeps every row
 * written since. Putting the backup back (discarding those writes) happens
 * only on a rollback request with mode "restore-backup" and acceptLoss.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { proxySummarisedActivities } from './activity-options';
import { z } from 'zod';
import type {
  AppliedVersion,
  ApplyRetry,
  OpenMemoryBackup,
  RestoreLoss,
  RevertedVersion,
  UpgradePlan,
  VerificationReport,
} from '../activities/openmemory';
import type { Outcome, ValidationReport } from './messages';
import { MigrationRun, errorMessage, parsePlan } from './migration-run';
import { ApprovalPlan, duration, isZeroDuration, postgresUrl, sqlIdentifier } from './plan-schemas';

const OpenMemoryTarget = z.discriminatedUnion('engine', [
  z.object({ engine: z.literal('sqlite'), /** The OpenMemory database file (OM_DB_PATH). */ path: z.string().min(1) }).strict(),
  z
    .object({
      engine: z.literal('postgres'),
      url: postgresUrl,
      /** OM_PG_SCHEMA */
      schema: sqlIdentifier.default('public'),
      /** OM_PG_TABLE, the memories table; default openmemory_memories. */
      table: sqlIdentifier.optional(),
      /** OM_VECTOR_TABLE; default openmemory_vectors. */
      vectorTable: sqlIdentifier.optional(),
    })
    .strict(),
]);

export const TenantSchemaPlan = z
  .object({
    target: OpenMemoryTarget,
    /** A known schema version, e.g. "1.2.0"; default the latest this memshift knows. */
    targetVersion: z.string().min(1).optional(),
    /** Where the verified backup goes: a file (SQLite; default beside the database) or a new schema (PostgreSQL). */
    backup: z.object({ file: z.string().min(1).optional(), schema: sqlIdentifier.optional() }).strict().prefault({}),
    /** Approval before the first schema change; `required: false` applies right after the backup. */
    approval: ApprovalPlan.extend({ required: z.boolean().default(true) }).strict().prefault({}),
    /** How long after a verified upgrade a `rollback` signal is still acted on. */
    rollbackWindow: duration.default('0s'),
    /** Preflight only: the current state and the exact SQL per version; changes nothing. */
    dryRun: z.boolean().default(false),
  })
  .strict()
  .superRefine((plan, ctx) => {
    if (plan.target.engine === 'sqlite' && plan.backup.schema) {
      ctx.addIssue({ code: 'custom', path: ['backup', 'schema'], message: 'is for PostgreSQL targets; an SQLite target takes backup.file' });
    }
    if (plan.target.engine === 'postgres' && plan.backup.file) {
      ctx.addIssue({ code: 'custom', path: ['backup', 'file'], message: 'is for SQLite targets; a PostgreSQL target takes backup.schema' });
    }
  });

/** The plan as a person writes it (defaults optional). */
export type TenantSchemaPlanInput = z.input<typeof TenantSchemaPlan>;
export type TenantSchemaPlan = z.output<typeof TenantSchemaPlan>;

export interface TenantSchemaStep {
  version: string;
  /** Where the version stood at preflight: not-started, partial, applied-unrecorded. */
  status: string;
  changes: string[];
  /** Exactly the statements applied (or, in a dry run, that would be), in one transaction. */
  sql: string[];
}

export interface TenantSchemaResult {
  outcome: Outcome;
  /** True when the database already was at the target version: nothing was done. */
  upToDate: boolean;
  fromVersion: string | null;
  targetVersion: string | null;
  steps: TenantSchemaStep[];
  applied: AppliedVersion[];
  verification: VerificationReport | null;
  backup: OpenMemoryBackup | null;
  /** The reverse run by a rollback that kept every write, newest version first. */
  reverted: RevertedVersion[];
  /** What the last `restore-backup` request would discard (or, when accepted, discarded), per table. */
  restoreLosses: RestoreLoss[] | null;
  report: ValidationReport | null;
  notes: string[];
}

// Not activity-options.ts' quickActivities: a lock held by a running OpenMemory ('DatabaseLocked') is retried
// for minutes (10 attempts backing off to 1m), not 5 quick ones; refusals are non-retryable ApplicationFailures.
const retry = { initialInterval: '2s', maximumInterval: '1m', maximumAttempts: 10 };
const quick = proxySummarisedActivities({ startToCloseTimeout: '30m', retry });
// Backup, apply, verify, restore hold or write the database and heartbeat while they run (activities/openmemory):
// a dead worker is noticed within heartbeatTimeout and the attempt retried on another, not after 30 minutes.
const held = proxySummarisedActivities({ startToCloseTimeout: '30m', heartbeatTimeout: '10s', retry });

export async function tenantSchemaUpgrade(input: TenantSchemaPlanInput): Promise<TenantSchemaResult> {
  const plan = parsePlan(TenantSchemaPlan, input);
  const { target } = plan;
  const where = target.engine === 'sqlite' ? `sqlite://${target.path}` : `${new URL(target.url).host}/${target.schema}`;
  const run = new MigrationRun({
    workflow: 'tenantSchemaUpgrade',
    kind: 'openmemory-schema',
    source: where,
    target: `${where}@${plan.targetVersion ?? 'latest'}`,
    approvers: plan.approval.approvers,
    dryRun: plan.dryRun,
  });
  let upgrade: UpgradePlan | null = null;
  let backup: OpenMemoryBackup | null = null;
  const applied: AppliedVersion[] = [];
  let verification: VerificationReport | null = null;
  const reverted: RevertedVersion[] = [];
  let restoreLosses: RestoreLoss[] | null = null;
  const result = (outcome: Outcome) =>
    run.finish(outcome, {
      upToDate: upgrade?.upToDate ?? false,
      fromVersion: upgrade?.inspection.currentVersion ?? null,
      targetVersion: upgrade?.targetVersion ?? null,
      steps: (upgrade?.steps ?? []).map(({ version, status, changes, sql }) => ({ version, status, changes, sql })),
      applied,
      verification,
      backup,
      reverted,
      restoreLosses,
    });

  upgrade = await run.phase('preflight', async () => {
    const targetVersion = plan.targetVersion ?? (await quick.inspectOpenMemory({ target })).versions.at(-1)!.id;
    return quick.planUpgrade({ target, targetVersion });
  });
  const { inspection } = upgrade;
  const counts = Object.entries(inspection.rowCounts).map(([t, n]) => `${t} ${n}`);
  run.note(`${inspection.location} is at v${inspection.currentVersion}, target ${upgrade.targetVersion}; rows: ${counts.join(', ')}.`);
  for (const v of inspection.versions) {
    const missing = v.changes.filter((c) => c.status !== 'present').map((c) => c.id);
    const present = v.changes.filter((c) => c.status === 'present').map((c) => c.id);
    const detail = v.status === 'recorded' ? '' : `; present: [${present.join(', ')}]; to make: [${missing.join(', ')}]`;
    const leftovers = v.leftovers.length ? `; leftovers of an interrupted run: ${v.leftovers.join(', ')}` : '';
    run.note(`${v.id}: ${v.status}${detail}${leftovers}.`);
  }
  for (const step of upgrade.steps) {
    run.note(`${plan.dryRun ? 'Would run' : 'Will run'} for ${step.version}, in one transaction:\n${step.sql.join(';\n')};`);
  }

  if (plan.dryRun) {
    run.note(`Dry run: ${upgrade.upToDate ? 'already up to date' : `${upgrade.steps.length} version(s) pending`}. Nothing was changed.`);
    return result('dry-run');
  }
  if (upgrade.upToDate) {
    run.note(`Already at ${upgrade.targetVersion}: nothing to do, nothing changed.`);
    return result('up-to-date');
  }

  const location = plan.backup.file ?? plan.backup.schema ?? defaultBackupLocation(plan);
  backup = await run.phase('backup', () =>
    held.backupOpenMemory({ target, ...(target.engine === 'sqlite' ? { backupFile: location } : { backupSchema: location }) }),
  );
  run.note(`Backup verified: ${backup.engine === 'sqlite' ? `file ${backup.file} (sha256 ${backup.sha256.slice(0, 12)}…)` : `schema ${backup.schema}`}.`);

  if (plan.approval.required) {
    const decision = await run.awaitCutoverApproval(plan.approval.timeout);
    if (decision !== 'approved') {
      run.note(`The schema was not touched; the backup is kept at ${location}.`);
      return result(decision === 'rejected' ? 'rejected' : 'approval-timed-out');
    }
  } else {
    run.note('The plan does not require approval: applying after the backup.');
  }

  /** The reverse of every version this run applied, newest first: every row stays. */
  const revert = async (why: string) => {
    await run.phase('rollback', async () => {
      for (const done of [...applied].reverse().filter((a) => a.applied.length > 0)) {
        reverted.push(await held.revertOpenMemoryVersion({ target, version: done.version, changes: done.applied }));
      }
    });
    run.note(`Rolled back (${why}), keeping every row: ${reverted.map(revertedNote).join('; ')}.`);
    return result('rolled-back');
  };

  try {
    await run.phase('cutover', async () => {
      for (const step of upgrade!.steps) {
        const done = await held.applyOpenMemoryVersion({ target, version: step.version, changes: step.changes });
        applied.push(done);
        if (done.retry) run.note(retryNote(done.version, done.retry));
        const rows = Object.entries(done.rowCounts).map(([t, n]) => `${t} ${n}`);
        run.note(
          `Applied ${done.version}: ${done.statements} statements in one transaction (${done.applied.join(', ') || 'already recorded'}); ` +
            `every row kept, checked under the write lock: ${rows.join(', ')}.`,
        );
      }
    });
  } catch (err) {
    // The failed version's transaction rolled back; versions committed before it in this run are reversed.
    if (applied.length === 0) throw err;
    await revert(`applying failed after ${applied.map((a) => a.version).join(', ')}`);
    throw ApplicationFailure.nonRetryable(`${errorMessage(err)} — the versions applied before it were reversed, keeping every row.`, 'MigrationFailed');
  }

  verification = await run.phase('verify', () => held.verifyOpenMemoryUpgrade({ target, targetVersion: upgrade!.targetVersion }));
  if (!verification.ok) {
    const failed = verification.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    return revert(`verification failed: ${failed.join('; ')}`);
  }
  run.note(`Verified: ${verification.checks.length} checks passed.`);

  if (isZeroDuration(plan.rollbackWindow)) return result('cut-over');
  // Requests queue in MigrationRun, so one refused here leaves the way back open.
  run.openRollbackWindow(plan.rollbackWindow);
  for (;;) {
    const request = await run.nextRollbackRequest();
    if (!request) return result('cut-over');
    const why = `requested by ${request.by}${request.reason ? `: ${request.reason}` : ''}`;
    if (request.mode !== 'restore-backup') {
      try {
        return await revert(why);
      } catch (err) {
        if (failureType(err) !== 'RollbackWouldLoseRows') throw err;
        run.note(`Refused rollback from ${request.by}: ${errorMessage(err)}`);
        continue;
      }
    }
    restoreLosses = await quick.restoreLossesOpenMemory({ target, backup: backup! });
    const losses = restoreLosses.filter((l) => l.discarded > 0).map((l) => `${l.table} ${l.discarded} of ${l.rowsNow} rows (${l.rowsInBackup} in the backup)`);
    const loss = losses.length > 0 ? losses.join(', ') : 'nothing';
    if (!request.acceptLoss) {
      run.note(
        `Refused rollback from ${request.by} with mode "restore-backup": restoring the backup would discard ${loss}. ` +
          `Nothing was changed. Send it again with "acceptLoss": true to accept that, or without a mode to keep every write.`,
      );
      continue;
    }
    const restored = await run.phase('rollback', () => held.restoreOpenMemory({ target, backup: backup! }));
    const tables = restored.tables.map((t) => `${t.name} ${t.action}${t.action === 'restored' ? ` (${t.rows} rows)` : ''}`);
    run.note(`Rolled back by restoring the backup (${why}), discarding ${loss} as accepted: ${tables.join(', ')}.`);
    return result('rolled-back');
  }
}

function revertedNote(r: RevertedVersion): string {
  if (r.alreadyReverted) return `${r.version} was already reversed`;
  const rows = Object.entries(r.rowCounts).map(([t, n]) => `${t} ${n}`);
  const dropped = Object.entries(r.droppedValues).map(([c, n]) => `${c} (${n} values)`);
  const kept = Object.entries(r.keptTables).map(([t, n]) => `${t} (${n} rows)`);
  return (
    `reversed ${r.version} in one transaction (${r.statements} statements); rows: ${rows.join(', ')}` +
    (dropped.length ? `; dropped with their columns: ${dropped.join(', ')}` : '') +
    (kept.length ? `; kept, holding rows written since: ${kept.join(', ')}` : '')
  );
}

function failureType(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof ApplicationFailure ? cause.type ?? undefined : undefined;
}

/** What a retried apply found after an earlier attempt died with its worker or failed on a lock. */
function retryNote(version: string, { attempt, previousAttemptAt, found }: ApplyRetry): string {
  const at = previousAttemptAt ? `, last heard at "${previousAttemptAt}"` : '';
  const outcome =
    found === 'recorded'
      ? 'already recorded: an earlier attempt had committed it before its result reached Temporal; nothing was run again'
      : `${found}, as planned: nothing of an earlier attempt had been committed (a version commits whole or not at all)`;
  return `Applying ${version} took ${attempt} attempts (the one before stopped without finishing${at}); attempt ${attempt} found ${version} ${outcome}.`;
}

/** Per run, so a re-run never meets an earlier run's backup: beside the file, or a sibling schema. */
function defaultBackupLocation(plan: TenantSchemaPlan): string {
  const id = workflowInfo().runId.replace(/-/g, '').slice(0, 12);
  if (plan.target.engine === 'sqlite') return `${plan.target.path}.memshift-${id}.bak`;
  return `${plan.target.schema.slice(0, 40)}_memshift_bak_${id}`;
}
