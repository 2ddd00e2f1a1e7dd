/**
 * The phase machinery every runbook workflow shares: status query, search
 * attributes and current details for the Web UI, pause/resume, live copy
 * settings, the approval gate and the post-cutover rollback window.
 *
 * A workflow creates one MigrationRun before its first await (so no message
 * arrives unhandled) and wraps each phase in `run.phase(...)`.
 */
import {
  ApplicationFailure,
  condition,
  log,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { z } from 'zod';
import {
  approveSignal,
  approveUpdate,
  copyControlQuery,
  copyProgressSignal,
  pauseSignal,
  rejectSignal,
  resumeSignal,
  rollbackSignal,
  setCopySettingsSignal,
  statusQuery,
  type CopySettings,
  type Decision,
  type MigrationStatus,
  type Outcome,
  type Phase,
  type RollbackRequest,
  type ValidationReport,
} from './messages';
import { MigrationKind, MigrationPhase, MigrationSource, MigrationTarget } from './search-attributes';

/**
 * Parses a plan at the workflow's first step. Bad input fails the workflow at
 * once (non-retryable) with every bad field named, before anything is touched.
 */
export function parsePlan<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const where = issue.path.length ? issue.path.join('.') : '(plan)';
    return `${where}: ${issue.message}`;
  });
  throw ApplicationFailure.nonRetryable(`Invalid plan — fix these fields: ${problems.join('; ')}`, 'InvalidPlan');
}

export interface RunDescription {
  workflow: string;
  kind: string;
  source: string;
  target: string;
  approvers: string[];
  dryRun: boolean;
  /** Runbooks that copy points; the others show no copy progress. */
  copy?: CopySettings;
}

export type ApprovalResult = 'approved' | 'rejected' | 'timed-out';

export class MigrationRun {
  readonly status: MigrationStatus;
  private decided: { approved: boolean } | null = null;
  private rollbackRequest: RollbackRequest | null = null;
  private rollbackOpen = false;

  constructor(private readonly description: RunDescription) {
    this.status = {
      workflow: description.workflow,
      phase: 'validate-input',
      phasesDone: [],
      paused: false,
      dryRun: description.dryRun,
      copy: { batchSize: 0, concurrency: 0, ...description.copy, total: 0, copied: 0, rate: 0, etaSeconds: null },
      report: null,
      approval: { awaiting: false, approvers: description.approvers, decision: null },
      notes: [],
      error: null,
      outcome: null,
    };
    this.installHandlers();
    upsertSearchAttributes([
      { key: MigrationKind, value: description.kind },
      { key: MigrationSource, value: description.source },
      { key: MigrationTarget, value: description.target },
    ]);
    this.show('validate-input');
  }

  /** Runs one phase: waits while paused, reports it, records it done. */
  async phase<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    await condition(() => !this.status.paused);
    this.show(phase);
    try {
      const result = await work();
      this.status.phasesDone.push(phase);
      return result;
    } catch (err) {
      this.status.error = `${phase}: ${errorMessage(err)}`;
      this.refreshDetails();
      throw err;
    }
  }

  setReport(report: ValidationReport): void {
    this.status.report = report;
    this.refreshDetails();
  }

  note(message: string): void {
    this.status.notes.push(message);
    log.info(message);
  }

  /** Total points the copy will move, known after preflight. */
  setCopyTotal(total: number): void {
    this.status.copy.total = total;
  }

  /**
   * The gate before anything irreversible: resolves on an approve or reject
   * from an allowed approver, or on the plan's timeout.
   */
  async awaitCutoverApproval(timeout?: Duration): Promise<ApprovalResult> {
    this.show('await-approval');
    this.status.approval.awaiting = true;
    const decidedInTime = timeout
      ? await condition(() => this.decided !== null, timeout)
      : (await condition(() => this.decided !== null), true);
    this.status.approval.awaiting = false;
    if (!decidedInTime) {
      this.note(`No decision within ${timeout}: ending without cutover.`);
      return 'timed-out';
    }
    this.status.phasesDone.push('await-approval');
    return this.decided!.approved ? 'approved' : 'rejected';
  }

  /**
   * After a verified cutover, keeps the way back open for `window`:
   * resolves with the rollback request, or null once the window has passed.
   */
  async awaitRollbackRequest(window: Duration): Promise<RollbackRequest | null> {
    this.show('rollback-window');
    this.rollbackOpen = true;
    await condition(() => this.rollbackRequest !== null, window);
    this.rollbackOpen = false;
    return this.rollbackRequest;
  }

  finish<T extends object>(outcome: Outcome, result: T): T & { outcome: Outcome; report: ValidationReport | null; notes: string[] } {
    this.status.outcome = outcome;
    this.show('done');
    return { ...result, outcome, report: this.status.report, notes: this.status.notes };
  }

  private installHandlers(): void {
    setHandler(statusQuery, () => this.status);
    setHandler(copyControlQuery, () => ({
      paused: this.status.paused,
      batchSize: this.status.copy.batchSize,
      concurrency: this.status.copy.concurrency,
    }));
    setHandler(approveSignal, (decision) => this.decide(decision, true));
    setHandler(rejectSignal, (decision) => this.decide(decision, false));
    setHandler(
      approveUpdate,
      (decision) => {
        this.decide(decision, true);
        return this.status;
      },
      { validator: (decision) => this.assertCanDecide(decision) },
    );
    setHandler(pauseSignal, () => {
      this.status.paused = true;
      this.refreshDetails();
    });
    setHandler(resumeSignal, () => {
      this.status.paused = false;
      this.refreshDetails();
    });
    setHandler(setCopySettingsSignal, (settings) => {
      if (settings.batchSize && settings.batchSize > 0) this.status.copy.batchSize = Math.floor(settings.batchSize);
      if (settings.concurrency && settings.concurrency > 0) this.status.copy.concurrency = Math.floor(settings.concurrency);
      this.note(`Copy settings now batchSize=${this.status.copy.batchSize}, concurrency=${this.status.copy.concurrency}.`);
    });
    setHandler(copyProgressSignal, (progress) => {
      const copy = this.status.copy;
      copy.total = progress.total;
      copy.copied = progress.copied;
      copy.rate = Math.round(progress.rate);
      copy.etaSeconds = progress.rate > 0 ? Math.ceil((progress.total - progress.copied) / progress.rate) : null;
      this.refreshDetails();
    });
    setHandler(rollbackSignal, (decision) => {
      if (this.status.approval.awaiting) {
        // Before cutover a rollback request is a rejection: nothing is live yet.
        this.decide(decision, false);
      } else if (this.rollbackOpen && this.isAllowed(decision)) {
        this.rollbackRequest = decision;
      } else {
        this.note(`Ignored rollback from '${decision.by}': ${this.rollbackOpen ? 'not an allowed approver' : 'no cutover to roll back'}.`);
      }
    });
  }

  /** Validator for the approve update: refusing here leaves no trace in history. */
  private assertCanDecide(decision: Decision): void {
    if (!decision || typeof decision.by !== 'string' || !decision.by.trim()) {
      throw new Error("An approval must say who approves: { by: 'name', reason?: '…' }.");
    }
    if (!this.status.approval.awaiting || this.decided) {
      throw new Error(`Nothing awaits approval: the migration is in phase '${this.status.phase}'.`);
    }
    if (!this.isAllowed(decision)) {
      throw new Error(`'${decision.by}' is not on this plan's approver list (${this.description.approvers.join(', ')}).`);
    }
  }

  /** Signals cannot be refused, so a decision that the validator would refuse is noted and ignored. */
  private decide(decision: Decision, approved: boolean): void {
    try {
      this.assertCanDecide(decision);
    } catch (err) {
      this.note(`Ignored ${approved ? 'approval' : 'rejection'}: ${errorMessage(err)}`);
      return;
    }
    this.decided = { approved };
    this.status.approval.decision = { ...decision, approved };
    this.note(`${approved ? 'Approved' : 'Rejected'} by ${decision.by}${decision.reason ? `: ${decision.reason}` : ''}.`);
  }

  private isAllowed(decision: Decision): boolean {
    const allowed = this.description.approvers;
    return allowed.length === 0 || allowed.includes(decision.by);
  }

  private show(phase: Phase): void {
    this.status.phase = phase;
    upsertSearchAttributes([{ key: MigrationPhase, value: phase }]);
    this.refreshDetails();
  }

  /** The one-line summary the Web UI shows as the workflow's current details. */
  private refreshDetails(): void {
    const { phase, copy, report, paused, error, approval } = this.status;
    const parts = [`**${this.description.kind}** ${this.description.source} → ${this.description.target}`, `phase: ${phase}`];
    if (paused) parts.push('PAUSED');
    if (copy.total > 0) {
      const pct = Math.floor((100 * copy.copied) / copy.total);
      const eta = copy.etaSeconds === null ? '' : `, ETA ${copy.etaSeconds}s`;
      parts.push(`copied ${copy.copied}/${copy.total} (${pct}%) at ${copy.rate}/s${eta}`);
    }
    if (report) parts.push(`validation ${report.ok ? 'passed' : 'FAILED'}: ${report.targetCount}/${report.sourceCount}`);
    if (approval.awaiting) parts.push(`waiting for approval${approval.approvers.length ? ` from ${approval.approvers.join(' or ')}` : ''}`);
    if (error) parts.push(`error: ${error}`);
    setCurrentDetails(parts.join('\n\n'));
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // Activity failures wrap the activity's own error as `cause`: show the cause.
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? cause.message : err.message;
  }
  return String(err);
}
