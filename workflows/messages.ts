/**
 * Every message a memshift workflow answers, declared once and imported by
 * workflows, the CLI, the worker's activities and the tests.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export const PHASES = [
  'validate-input',
  'preflight',
  'backup',
  'prepare-target',
  'copy',
  'validate',
  'await-approval',
  'cutover',
  'verify',
  'rollback-window',
  'rollback',
  'done',
] as const;
export type Phase = (typeof PHASES)[number];

export type Outcome = 'cut-over' | 'up-to-date' | 'rejected' | 'approval-timed-out' | 'rolled-back' | 'dry-run' | 'failed' | 'cancelled';

/** Who decided and why; carried by approve/reject signals and the approve update. */
export interface Decision {
  by: string;
  reason?: string;
}

/**
 * A rollback request. By default a rollback keeps every write made since
 * cutover. `restore-backup` puts the pre-migration backup back instead and so
 * discards later writes: the workflow refuses it unless `acceptLoss` is true,
 * and says first what it would discard.
 */
export interface RollbackRequest extends Decision {
  mode?: 'keep-writes' | 'restore-backup';
  acceptLoss?: boolean;
}

export interface CopySettings {
  batchSize: number;
  concurrency: number;
}

/** Who steers a running migration (pause, resume, copy settings): checked against the approvers when the plan names any. */
export interface Operator {
  by?: string;
  reason?: string;
}

/** A change to a running copy's settings, within the plan schema's limits (COPY_LIMITS). */
export type CopySettingsRequest = Partial<CopySettings> & Operator;

/** What the copy activity polls between batches. */
export interface CopyControl extends CopySettings {
  paused: boolean;
}

/**
 * One slice of a copy's source key space, in the source's own cursor terms:
 * the points a copy starting at cursor `start` reads before it reaches
 * cursor `end` (null: the beginning / the end of the source). Computed once
 * by an activity and kept in workflow state, so every retry copies the same slice.
 */
export interface CopyRange {
  index: number;
  start: string | null;
  end: string | null;
}

/** A slice of the point-id space, [from, to) in Qdrant's id order (integers first, then uuids as lowercase hex); null = unbounded. */
export interface IdRange {
  index: number;
  from: string | null;
  to: string | null;
}

/**
 * The exhaustive pass over every point (ids only, capped lists plus counts):
 * each point compared by payload, canonically (activities/compare.ts), and
 * by vector within the float bound. Points written after the recorded watermark
 * are counted in `writtenSince`, never as failures.
 */
export interface ExhaustiveComparison {
  compared: number;
  equal: number;
  missing: number;
  extra: number;
  different: number;
  writtenSince: number;
  missingIds: string[];
  extraIds: string[];
  differentIds: string[];
  /** Wall time of the pass (all ranges, in parallel). */
  seconds: number;
  ranges: number;
}

/** What the copy activity reports back: rarely (see activities/copy-engine.ts); live progress is in its heartbeat. */
export interface CopyProgress {
  total: number;
  copied: number;
  /** Points per second over the current attempt. */
  rate: number;
  attempt: number;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** The validation report an approver reads: counts, samples, every mismatch. */
export interface ValidationReport {
  ok: boolean;
  sourceCount: number;
  targetCount: number;
  perUser: { user: string; source: number; target: number }[];
  sampled: number;
  minCosine: number | null;
  checks: CheckResult[];
  /** First mismatches by point id (never contents), capped. */
  errors: string[];
  /** The pass over every point, when the runbook ran it. */
  exhaustive?: ExhaustiveComparison;
}

/** A partitioned copy's ranges: live per-range progress is in each range activity's heartbeat. */
export interface CopyRangesStatus {
  count: number;
  done: number;
  /** Indices of finished ranges (their counts are in `copied`). */
  doneIndices: number[];
}

export interface MigrationStatus {
  workflow: string;
  phase: Phase;
  phasesDone: Phase[];
  paused: boolean;
  dryRun: boolean;
  copy: CopySettings & { total: number; copied: number; rate: number; etaSeconds: number | null; ranges?: CopyRangesStatus };
  report: ValidationReport | null;
  approval: { awaiting: boolean; approvers: string[]; decision: (Decision & { approved: boolean }) | null };
  notes: string[];
  error: string | null;
  outcome: Outcome | null;
}

export const statusQuery = defineQuery<MigrationStatus>('status');
export const copyControlQuery = defineQuery<CopyControl>('copyControl');

// Every decision and control has a signal (for `temporal workflow signal`; one that is
// not allowed is noted and ignored) and an update of the same name whose validator
// refuses it at once, leaving no trace in history.
export const approveSignal = defineSignal<[Decision]>('approve');
export const rejectSignal = defineSignal<[Decision]>('reject');
export const pauseSignal = defineSignal<[Operator?]>('pause');
export const resumeSignal = defineSignal<[Operator?]>('resume');
export const rollbackSignal = defineSignal<[RollbackRequest]>('rollback');
export const setCopySettingsSignal = defineSignal<[CopySettingsRequest]>('setCopySettings');
export const copyProgressSignal = defineSignal<[CopyProgress]>('copyProgress');

export const approveUpdate = defineUpdate<MigrationStatus, [Decision]>('approve');
export const rejectUpdate = defineUpdate<MigrationStatus, [Decision]>('reject');
export const pauseUpdate = defineUpdate<MigrationStatus, [Operator]>('pause');
export const resumeUpdate = defineUpdate<MigrationStatus, [Operator]>('resume');
export const rollbackUpdate = defineUpdate<MigrationStatus, [RollbackRequest]>('rollback');
export const setCopySettingsUpdate = defineUpdate<MigrationStatus, [CopySettingsRequest]>('setCopySettings');
