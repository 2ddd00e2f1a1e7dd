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

export type Outcome = 'cut-over' | 'up-to-date' | 'rejected' | 'approval-timed-out' | 'rolled-back' | 'dry-run' | 'failed';

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

/** What the copy activity polls between batches. */
export interface CopyControl extends CopySettings {
  paused: boolean;
}

/** What the copy activity reports back, a few times a second at most. */
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
}

export interface MigrationStatus {
  workflow: string;
  phase: Phase;
  phasesDone: Phase[];
  paused: boolean;
  dryRun: boolean;
  copy: CopySettings & { total: number; copied: number; rate: number; etaSeconds: number | null };
  report: ValidationReport | null;
  approval: { awaiting: boolean; approvers: string[]; decision: (Decision & { approved: boolean }) | null };
  notes: string[];
  error: string | null;
  outcome: Outcome | null;
}

export const statusQuery = defineQuery<MigrationStatus>('status');
export const copyControlQuery = defineQuery<CopyControl>('copyControl');

export const approveSignal = defineSignal<[Decision]>('approve');
export const rejectSignal = defineSignal<[Decision]>('reject');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const rollbackSignal = defineSignal<[RollbackRequest]>('rollback');
export const setCopySettingsSignal = defineSignal<[Partial<CopySettings>]>('setCopySettings');
export const copyProgressSignal = defineSignal<[CopyProgress]>('copyProgress');

/** Answers at once: refused when nothing awaits approval or the approver is not allowed. */
export const approveUpdate = defineUpdate<MigrationStatus, [Decision]>('approve');
