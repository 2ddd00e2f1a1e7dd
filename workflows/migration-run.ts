/**
 * The phase machinery every runbook workflow shares: status query, search
 * attributes and current details for the Web UI, pause/resume, live copy
 * settings, the approval gate and the post-cutover rollback window.
 *
 * A workflow creates one MigrationRun before its first await (so no message
 * arrives unhandled) and wraps each phase in `run.phase(...)`. Every message a
 * person sends exists as an update (refused at once by its validator) and as a
 * signal (refused ones are noted and ignored); both go through the same checks.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Duration, SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { z } from 'zod';
import type { CopyResult } from '../activities/copy-engine';
import { splitIdRange } from '../activities/stores/key-order';
import {
  approveSignal,
  approveUpdate,
  copyControlQuery,
  copyProgressSignal,
  pauseSignal,
  pauseUpdate,
  rejectSignal,
  rejectUpdate,
  resumeSignal,
  resumeUpdate,
  rollbackSignal,
  rollbackUpdate,
  setCopySettingsSignal,
  setCopySettingsUpdate,
  statusQuery,
  type CopyRange,
  type CopySettings,
  type CopySettingsRequest,
  type ExhaustiveComparison,
  type IdRange,
  type Decision,
  type MigrationStatus,
  type Operator,
  type Outcome,
  type Phase,
  type RollbackRequest,
  type ValidationReport,
} from './messages';
import { COPY_LIMITS, isZeroDuration } from './plan-schemas';
import { MigrationKind, MigrationOutcome, MigrationPhase, MigrationSource, MigrationTarget } from './search-attributes';

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

/** Work repeated while approval waits (catching up with live writes), at most `maxRounds` times. */
export interface KeepUpWhileWaiting {
  every: Duration;
  maxRounds: number;
  run(round: number): Promise<void>;
}

/**
 * A copy split into key ranges, each its own heartbeating activity on
 * whichever worker takes it. `split` is an activity that samples the
 * source's keys once (its answer stays in history, so retries and replays
 * copy the same ranges); `copyRange` copies one range with the copy engine.
 */
export interface RangedCopy {
  partitions: number;
  split(parts: number): Promise<string[]>;
  copyRange(range: CopyRange): Promise<CopyResult>;
}

/** A runbook's side of the switch (see MigrationRun.switchOver). */
export interface SwitchSteps<C> {
  cutOver(): Promise<C>;
  /** The note once the switch is done. */
  describe(cutover: C): string;
  verify(): Promise<unknown>;
  /** Undoes the cutover keeping every write; `request` is null for an automatic rollback. */
  rollBack(request: RollbackRequest | null): Promise<{ summary: string }>;
  rollbackWindow: Duration;
}

/** One range of an exhaustive validation: the runbook's activity comparing every point with ids in it. */
export type CompareIdRange = (range: IdRange) => Promise<ExhaustiveComparison & { problems: string[] }>;

/**
 * The point-id space cut into `parts` equal slices of the uuid space (ids are
 * uuids: random or hashes, so evenly spread; integer ids fall in the first).
 * Pure arithmetic, so a workflow computes it without an activity.
 */
export function idRanges(parts: number): IdRange[] {
  return splitIdRange({ index: 0, from: null, to: null }, parts).map((range, index) => ({ ...range, index }));
}

const MAX_NAMED_IDS = 20;

/** Several ranges' comparisons as one: counts summed, id lists capped, the wall time of the whole pass. */
function mergeComparisons(parts: ExhaustiveComparison[], seconds: number): ExhaustiveComparison {
  const sum = (key: 'compared' | 'equal' | 'missing' | 'extra' | 'different' | 'writtenSince' | 'ranges') => parts.reduce((n, p) => n + p[key], 0);
  const ids = (key: 'missingIds' | 'extraIds' | 'differentIds') => parts.flatMap((p) => p[key]).slice(0, MAX_NAMED_IDS);
  return {
    compared: sum('compared'),
    equal: sum('equal'),
    missing: sum('missing'),
    extra: sum('extra'),
    different: sum('different'),
    writtenSince: sum('writtenSince'),
    missingIds: ids('missingIds'),
    extraIds: ids('extraIds'),
    differentIds: ids('differentIds'),
    seconds,
    ranges: sum('ranges'),
  };
}

/** Phases that change what is live: once started they finish, even if the workflow is cancelled. */
const IRREVERSIBLE: Phase[] = ['cutover', 'verify', 'rollback'];

export class MigrationRun {
  readonly status: MigrationStatus;
  private decided: { approved: boolean } | null = null;
  private readonly rollbackRequests: RollbackRequest[] = [];
  private rollbackOpen = false;
  /** Ranges of partitioned copies started so far: range numbers stay unique across a run's copies. */
  private rangesStarted = 0;

  constructor(private readonly description: RunDescription) {
    this.status = {
      workflow: description.workflow,
      phase: 'validate-input',
      phasesDone: [],
      paused: false,
      dryRun: description.dryRun,
      copy: { batchSize: description.copy?.batchSize ?? 0, concurrency: description.copy?.concurrency ?? 0, total: 0, copied: 0, rate: 0, etaSeconds: null },
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

  /**
   * Runs one phase: waits while paused, reports it, records it done. Cutover,
   * verify and rollback run to their end even when the workflow is cancelled,
   * so a cancellation never leaves a half-switched store; a cancelled run
   * says what was done and what was not.
   */
  async phase<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    const start = async () => {
      await condition(() => !this.status.paused);
      this.show(phase);
      return work();
    };
    try {
      const result = IRREVERSIBLE.includes(phase) ? await CancellationScope.nonCancellable(start) : await start();
      this.status.phasesDone.push(phase);
      return result;
    } catch (err) {
      if (isCancellation(err)) {
        this.noteCancelled(phase);
      } else {
        // Not an outcome yet: a runbook may recover (e.g. roll back after a failed verify).
        // A failure that ends the run shows as ExecutionStatus = 'Failed'.
        this.status.error = `${phase}: ${errorMessage(err)}`;
        this.refreshDetails();
      }
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
   * A copy in key ranges, all running at once (up to `partitions`): every
   * range polls the same pause and live settings, and heartbeats its own
   * cursor and counts (live progress: Pending Activities / `memshift status`).
   * The workflow hears of a range only when it ends, so history grows by a
   * few events per range and never with the copy's length. Returns the
   * copy's totals; a range resumed after a crash is noted.
   */
  async copyInRanges(copy: RangedCopy): Promise<CopyResult> {
    const started = Date.now();
    const keys = await copy.split(copy.partitions);
    const first = this.rangesStarted;
    const ranges = [null, ...keys].map((start, i) => ({ index: first + i, start, end: keys[i] ?? null }));
    this.rangesStarted += ranges.length;
    const status = (this.status.copy.ranges ??= { count: 0, done: 0, doneIndices: [] });
    status.count += ranges.length;
    const results = await Promise.all(
      ranges.map(async (range) => {
        const result = await copy.copyRange(range);
        this.status.copy.copied += result.copied;
        status.done++;
        status.doneIndices.push(range.index);
        if (result.attempt > 1) {
          this.note(`Range ${range.index} resumed at ${result.resumedFrom + (result.alreadyWritten ?? 0)} points (attempt ${result.attempt}) and wrote the remaining ${result.writtenThisAttempt}.`);
        }
        this.refreshDetails();
        return result;
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const sum = (key: 'copied' | 'writtenThisAttempt' | 'alreadyWritten') => results.reduce((n, r) => n + (r[key] ?? 0), 0);
    this.status.copy.rate = Math.round(sum('copied') / Math.max(seconds, 0.001));
    this.status.copy.etaSeconds = 0;
    return { copied: sum('copied'), resumedFrom: 0, writtenThisAttempt: sum('writtenThisAttempt'), alreadyWritten: sum('alreadyWritten'), attempt: 1, seconds };
  }

  /**
   * The exhaustive pass, after the sample pre-check: the id space in
   * `partitions` ranges compared in parallel, each by the runbook's activity.
   * Adds an 'every point' check (named by `label` when a run has several)
   * and the mismatching ids to `report`, and returns it.
   */
  async validateEveryPoint(partitions: number, compareRange: CompareIdRange, report: ValidationReport, label?: string): Promise<ValidationReport> {
    const started = Date.now();
    const parts = await Promise.all(idRanges(partitions).map(compareRange));
    const pass = mergeComparisons(parts, (Date.now() - started) / 1000);
    const ok = pass.missing + pass.extra + pass.different === 0;
    const exhaustive = report.exhaustive ? mergeComparisons([report.exhaustive, pass], report.exhaustive.seconds + pass.seconds) : pass;
    return {
      ...report,
      ok: report.ok && ok,
      exhaustive,
      checks: [
        ...report.checks,
        {
          name: label ? `${label}: every point` : 'every point',
          ok,
          detail:
            `${pass.compared} ids compared in ${pass.seconds.toFixed(1)}s over ${pass.ranges} ranges: ${pass.equal} equal, ` +
            `${pass.missing} missing, ${pass.extra} extra, ${pass.different} different; ${pass.writtenSince} written since the watermark (caught up before and at cutover)`,
        },
      ],
      errors: [...parts.flatMap((p) => p.problems), ...report.errors].slice(0, MAX_NAMED_IDS),
    };
  }

  /**
   * The gate before anything irreversible: resolves on an approve or reject
   * from an allowed approver, or on the plan's timeout. Meanwhile `keepUp`
   * runs every `every`; a decision waits for a round in progress to end.
   */
  async awaitCutoverApproval(timeout?: Duration, keepUp?: KeepUpWhileWaiting): Promise<ApprovalResult> {
    this.show('await-approval');
    this.status.approval.awaiting = true;
    const decision = this.cancellable('await-approval', () =>
      timeout ? condition(() => this.decided !== null, timeout) : condition(() => this.decided !== null).then(() => true),
    );
    let over = false;
    decision.then(
      () => (this.closeGate(), (over = true)),
      () => (this.closeGate(), (over = true)),
    );
    for (let round = 1; keepUp && round <= keepUp.maxRounds; round++) {
      if (await condition(() => over, keepUp.every)) break;
      // A decision or the timeout never waits for a round: the round is cancelled (catch-ups are idempotent).
      const scope = new CancellationScope();
      const work = scope.run(() => keepUp.run(round));
      await Promise.race([work, condition(() => over)]);
      // Runs started before this change waited for the round: they keep doing so on replay.
      if (over && patched('keep-up-round-cancelled-by-decision')) {
        scope.cancel();
        await work.catch((err) => {
          if (!isCancellation(err)) throw err;
        });
      } else {
        await work;
      }
    }
    const decidedInTime = await decision;
    if (!decidedInTime) {
      this.note(`No decision within ${timeout}: ending without cutover.`);
      return 'timed-out';
    }
    this.status.phasesDone.push('await-approval');
    return this.decided!.approved ? 'approved' : 'rejected';
  }

  /**
   * The approval gate, catching up with live writes every `catchUp.every`
   * while it waits, so the cutover's own catch-up stays short however long
   * the approver takes. A failed round is noted, not fatal: the runbook's
   * watermark stays where the last good round left it, and cutover catches
   * up from there.
   */
  awaitApprovalCatchingUp(
    plan: { approval: { timeout?: Duration }; catchUp: { every: Duration; maxRoundsWhileWaiting: number } },
    catchUp: () => Promise<void>,
  ): Promise<ApprovalResult> {
    return this.awaitCutoverApproval(plan.approval.timeout, {
      every: plan.catchUp.every,
      maxRounds: plan.catchUp.maxRoundsWhileWaiting,
      run: async () => {
        try {
          await catchUp();
        } catch (err) {
          this.note(`Catch-up while waiting for approval failed: ${errorMessage(err)}`);
        }
      },
    });
  }

  /**
   * After a verified cutover, keeps the way back open for `window`: from now
   * on, rollback requests from allowed approvers queue up (see nextRollbackRequest).
   */
  openRollbackWindow(window: Duration): void {
    this.show('rollback-window');
    this.rollbackOpen = true;
    const close = () => (this.rollbackOpen = false);
    void sleep(window).then(close, close); // a cancelled run closes it too
  }

  /** The next queued rollback request, or null once the window has closed. A runbook may refuse one and ask again. */
  async nextRollbackRequest(): Promise<RollbackRequest | null> {
    this.show('rollback-window');
    await this.cancellable('rollback-window', () => condition(() => this.rollbackRequests.length > 0 || !this.rollbackOpen));
    return this.rollbackRequests.shift() ?? null;
  }

  /**
   * The rollback window for runbooks that take any request: each one runs
   * `rollBack`. A rollback that fails (a carry-back that did not read back
   * equal, a target gone missing) leaves the window open, so a person can fix
   * what it names and ask again: rollbacks resume from their records. Returns
   * the rollback's result, or null when the window closed with none; when it
   * closes after a failed one, the run fails with that failure.
   */
  async rollbackWindow<R>(window: Duration, rollBack: (why: string, request: RollbackRequest) => Promise<R>): Promise<R | null> {
    this.openRollbackWindow(window);
    let failed: unknown = null;
    for (;;) {
      const request = await this.nextRollbackRequest();
      if (!request) {
        if (failed) throw failed;
        return null;
      }
      try {
        return await rollBack(`requested by ${request.by}${request.reason ? `: ${request.reason}` : ''}`, request);
      } catch (err) {
        if (!patched('rollback-window-outlives-failed-rollback')) throw err;
        failed = err;
        this.note(`Rollback requested by ${request.by} failed: ${errorMessage(err)}. The way back stays open until the window closes: fix what it names and send rollback again.`);
      }
    }
  }

  /**
   * Cutover, verify and the rollback window, for runbooks whose rollback
   * undoes the switch keeping every write. A cutover that fails (it may have
   * switched already) or a verify that fails rolls back on its own; requests
   * in the window roll back on demand.
   */
  async switchOver<C>(steps: SwitchSteps<C>): Promise<'cut-over' | 'rolled-back'> {
    const rollBack = async (why: string, request: RollbackRequest | null) => {
      const undone = await this.phase('rollback', () => steps.rollBack(request));
      this.note(`Rolled back (${why}): ${undone.summary}`);
      return 'rolled-back' as const;
    };
    let cutover: C;
    try {
      cutover = await this.phase('cutover', () => steps.cutOver());
    } catch (err) {
      if (!rollsBackFailedCutover()) throw err;
      return rollBack(`cutover failed: ${errorMessage(err)}`, null);
    }
    this.note(steps.describe(cutover));
    try {
      await this.phase('verify', () => steps.verify());
    } catch (err) {
      return rollBack(`verification failed: ${errorMessage(err)}`, null);
    }
    if (isZeroDuration(steps.rollbackWindow)) return 'cut-over';
    return (await this.rollbackWindow(steps.rollbackWindow, rollBack)) ?? 'cut-over';
  }

  finish<T extends object>(outcome: Outcome, result: T): T & { outcome: Outcome; report: ValidationReport | null; notes: string[] } {
    this.endWith(outcome);
    this.show('done');
    return { ...result, outcome, report: this.status.report, notes: this.status.notes };
  }

  /** Waits that a cancellation may end: the run then says what it leaves behind. */
  private async cancellable<T>(phase: Phase, wait: () => Promise<T>): Promise<T> {
    try {
      return await wait();
    } catch (err) {
      if (isCancellation(err)) this.noteCancelled(phase);
      throw err;
    }
  }

  private noteCancelled(phase: Phase): void {
    const done = this.status.phasesDone;
    const state = done.includes('cutover') ? 'The cutover stands: the new store is live; nothing was rolled back.' : 'Nothing was cut over: the source is still live.';
    this.note(`Cancelled during ${phase}. Done: ${done.join(' → ') || 'nothing'}. ${state} Start a new run to continue, or roll back by hand as the runbook page says.`);
    this.endWith('cancelled');
  }

  private endWith(outcome: Outcome): void {
    this.status.outcome = outcome;
    upsertSearchAttributes([{ key: MigrationOutcome, value: outcome }]);
  }

  private installHandlers(): void {
    setHandler(statusQuery, () => this.status);
    setHandler(copyControlQuery, () => ({
      paused: this.status.paused,
      batchSize: this.status.copy.batchSize,
      concurrency: this.status.copy.concurrency,
    }));
    this.handle(approveSignal, approveUpdate, 'approval', (d: Decision) => this.assertCanDecide(d), (d: Decision) => this.decide(d, true));
    this.handle(rejectSignal, rejectUpdate, 'rejection', (d: Decision) => this.assertCanDecide(d), (d: Decision) => this.decide(d, false));
    this.handle(pauseSignal, pauseUpdate, 'pause', (o?: Operator) => this.assertOperator(o), () => this.setPaused(true));
    this.handle(resumeSignal, resumeUpdate, 'resume', (o?: Operator) => this.assertOperator(o), () => this.setPaused(false));
    this.handle(setCopySettingsSignal, setCopySettingsUpdate, 'copy settings', (r: CopySettingsRequest) => this.assertCopySettings(r), (r: CopySettingsRequest) => this.applyCopySettings(r));
    this.handle(rollbackSignal, rollbackUpdate, 'rollback', (r: RollbackRequest) => this.assertCanRollBack(r), (r: RollbackRequest) => this.requestRollback(r));
    setHandler(copyProgressSignal, (progress) => {
      const copy = this.status.copy;
      copy.total = progress.total;
      copy.copied = progress.copied;
      copy.rate = Math.round(progress.rate);
      copy.etaSeconds = progress.rate > 0 ? Math.ceil((progress.total - progress.copied) / progress.rate) : null;
      this.refreshDetails();
    });
  }

  /**
   * One message, two forms: the update refuses through its validator (no
   * history), the signal notes the refusal and ignores the message.
   */
  private handle<Args extends unknown[]>(
    signal: SignalDefinition<Args>,
    update: UpdateDefinition<MigrationStatus, Args>,
    what: string,
    check: (...args: Args) => void,
    act: (...args: Args) => void,
  ): void {
    setHandler(signal, (...args: Args) => {
      try {
        check(...args);
      } catch (err) {
        this.note(`Ignored ${what}: ${errorMessage(err)}`);
        return;
      }
      act(...args);
    });
    setHandler(
      update,
      (...args: Args) => {
        act(...args);
        return this.status;
      },
      { validator: check },
    );
  }

  /** Once decided or timed out, later approvals are refused even while a catch-up round winds down. */
  private closeGate(): void {
    this.status.approval.awaiting = false;
  }

  /** Refusing here leaves no trace in history. */
  private assertCanDecide(decision: Decision): void {
    this.assertAllowed(decision, true);
    if (!this.status.approval.awaiting || this.decided) {
      throw new Error(`Nothing awaits approval: the migration is in phase '${this.status.phase}'.`);
    }
  }

  private decide(decision: Decision, approved: boolean): void {
    this.decided = { approved };
    this.status.approval.decision = { ...decision, approved };
    this.note(`${approved ? 'Approved' : 'Rejected'} by ${decision.by}${decision.reason ? `: ${decision.reason}` : ''}.`);
  }

  /** Pause, resume and copy settings: anyone when the plan names no approvers, else only them. */
  private assertOperator(operator: Operator | undefined): void {
    if (this.description.approvers.length > 0) this.assertAllowed(operator, true);
  }

  private setPaused(paused: boolean): void {
    this.status.paused = paused;
    this.refreshDetails();
  }

  private assertCopySettings(request: CopySettingsRequest): void {
    this.assertOperator(request);
    if (request?.batchSize === undefined && request?.concurrency === undefined) throw new Error('Give batchSize and/or concurrency.');
    for (const key of ['batchSize', 'concurrency'] as const) {
      const value = request[key];
      const { min, max } = COPY_LIMITS[key];
      if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
        throw new Error(`${key} must be a whole number from ${min} to ${max}.`);
      }
    }
  }

  private applyCopySettings(request: CopySettingsRequest): void {
    if (request.batchSize !== undefined) this.status.copy.batchSize = request.batchSize;
    if (request.concurrency !== undefined) this.status.copy.concurrency = request.concurrency;
    this.note(`Copy settings now batchSize=${this.status.copy.batchSize}, concurrency=${this.status.copy.concurrency}${request.by ? ` (by ${request.by})` : ''}.`);
  }

  private assertCanRollBack(request: RollbackRequest): void {
    // Before cutover a rollback request is a rejection: nothing is live yet.
    if (this.status.approval.awaiting) return this.assertCanDecide(request);
    this.assertAllowed(request, true);
    if (!this.rollbackOpen) throw new Error(`No cutover to roll back: the migration is in phase '${this.status.phase}'.`);
  }

  private requestRollback(request: RollbackRequest): void {
    if (this.status.approval.awaiting) return this.decide(request, false);
    this.rollbackRequests.push(request);
    this.note(`Rollback requested by ${request.by}${request.mode ? ` (mode ${request.mode})` : ''}${request.reason ? `: ${request.reason}` : ''}.`);
  }

  private assertAllowed(who: Operator | undefined, mustName: boolean): void {
    if (mustName && (!who || typeof who.by !== 'string' || !who.by.trim())) {
      throw new Error("Say who you are: { by: 'name', reason?: '…' }.");
    }
    const allowed = this.description.approvers;
    if (allowed.length > 0 && !allowed.includes(who!.by!)) {
      throw new Error(`'${who!.by}' is not on this plan's approver list (${allowed.join(', ')}).`);
    }
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
      const ranges = copy.ranges ? ` in ${copy.ranges.count} ranges (${copy.ranges.done} done)` : '';
      const live = phase === 'copy' ? ' at the last report; live progress: Pending Activities → heartbeat details' : '';
      parts.push(`copied ${copy.copied}/${copy.total} (${pct}%)${ranges} at ${copy.rate}/s${eta}${live}`);
    }
    if (report) {
      const every = report.exhaustive ? `; every point: ${report.exhaustive.missing} missing, ${report.exhaustive.extra} extra, ${report.exhaustive.different} different` : '';
      parts.push(`validation ${report.ok ? 'passed' : 'FAILED'}: ${report.targetCount}/${report.sourceCount}${every}`);
    }
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

/**
 * A cutover that failed may have switched the service already, to a target
 * missing the writes of its last moments: the runbook rolls back (keeping
 * every write) instead of ending half-switched. Runs started before this
 * behaviour replay as they ran: the failure ends them.
 */
function rollsBackFailedCutover(): boolean {
  return patched('rollback-after-failed-cutover');
}
