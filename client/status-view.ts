/**
 * How a migration looks in a terminal: `memshift status`, `status --watch`
 * (a live progress bar with rate and ETA, or plain lines when not a TTY)
 * and the demo all show it the same way.
 */
import type { WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { CopyCheckpoint } from '../activities/copy-engine';
import { MultiBar, Presets } from 'cli-progress';
import { statusQuery, type MigrationStatus, type ValidationReport } from '../workflows/messages';
import { temporalConfig } from './temporal-config';

export function webUiLink(workflowId: string): string {
  const base = (process.env.MEMSHIFT_UI_URL ?? 'http://127.0.0.1:8233').replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(temporalConfig().namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export interface Snapshot {
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, … */
  execution: string;
  workflowType: string;
  /** null when the status query could not be answered (e.g. no worker is running). */
  status: MigrationStatus | null;
  queryError: string | null;
  failure: string | null;
}

/**
 * The workflow's status with the running copy's live progress from its last
 * heartbeat (as `temporal workflow describe` and the Web UI show it): the
 * copy reports to the workflow itself only rarely, to keep history small.
 */
export function withLiveCopyProgress(status: MigrationStatus, description: WorkflowExecutionDescription): MigrationStatus {
  const beats = (description.raw.pendingActivities ?? []).flatMap((activity) => {
    const [payload] = activity.heartbeatDetails?.payloads ?? [];
    const beat = payload ? (defaultPayloadConverter.fromPayload(payload) as Partial<CopyCheckpoint> | null) : null;
    return typeof beat?.copied === 'number' && typeof beat.total === 'number' ? [beat as CopyCheckpoint & { total: number }] : [];
  });
  const ranges = status.copy.ranges;
  if (ranges) {
    // A partitioned copy: finished ranges are counted in the status, running ones in their heartbeats.
    const running = beats.filter((beat) => beat.range !== undefined && !ranges.doneIndices.includes(beat.range));
    if (running.length === 0) return status;
    const copied = status.copy.copied + running.reduce((n, beat) => n + beat.copied, 0);
    const rate = running.reduce((n, beat) => n + (beat.rate ?? 0), 0);
    const etaSeconds = rate > 0 ? Math.ceil(Math.max(status.copy.total - copied, 0) / rate) : null;
    return { ...status, copy: { ...status.copy, copied, rate, etaSeconds } };
  }
  for (const beat of beats) {
    if (beat.copied < status.copy.copied) continue;
    const rate = beat.rate ?? 0;
    const etaSeconds = rate > 0 ? Math.ceil(Math.max(beat.total - beat.copied, 0) / rate) : null;
    return { ...status, copy: { ...status.copy, copied: beat.copied, total: Math.max(status.copy.total, beat.total), rate, etaSeconds } };
  }
  return status;
}

/** The status query's answer with live copy progress merged in. */
export async function liveStatus(handle: WorkflowHandle): Promise<MigrationStatus> {
  const [status, description] = await Promise.all([handle.query(statusQuery), handle.describe()]);
  return withLiveCopyProgress(status, description);
}

export async function takeSnapshot(handle: WorkflowHandle): Promise<Snapshot> {
  const description = await handle.describe();
  const execution = description.status.name;
  const [status, queryError] = await handle.query(statusQuery).then(
    (s) => [withLiveCopyProgress(s, description), null] as const,
    (err: Error) => [null, err.message] as const,
  );
  const failure = execution === 'FAILED' ? await failureOf(handle) : null;
  return { execution, workflowType: description.type, status, queryError, failure };
}

/** The innermost cause of a failed workflow: the message a person can act on. */
async function failureOf(handle: WorkflowHandle): Promise<string> {
  const err = await handle.result().then(() => null, (e: unknown) => e);
  let cause = err as Error & { cause?: unknown };
  while (cause?.cause instanceof Error) cause = cause.cause as Error & { cause?: unknown };
  return cause?.message ?? 'unknown failure';
}

const isClosed = (snapshot: Snapshot) => snapshot.execution !== 'RUNNING';

function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '—';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

function copyLine(copy: MigrationStatus['copy']): string {
  const pct = copy.total > 0 ? Math.floor((100 * copy.copied) / copy.total) : 0;
  const ranges = copy.ranges ? ` in ${copy.ranges.count} ranges (${copy.ranges.done} done)` : '';
  return `${copy.copied}/${copy.total} (${pct}%)${ranges} at ${copy.rate}/s, ETA ${formatSeconds(copy.etaSeconds)} — batch ${copy.batchSize} × ${copy.concurrency}`;
}

export function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
  return rows.map((row) => row.map((cell, col) => cell.padEnd(widths[col])).join('  ').trimEnd());
}

function reportLines(report: ValidationReport): string[] {
  const cosine = report.minCosine === null ? 'n/a' : report.minCosine.toFixed(4);
  const lines = [
    `Validation: ${report.ok ? 'PASSED' : 'FAILED'} — source ${report.sourceCount}, target ${report.targetCount}, ${report.sampled} sampled, min cosine ${cosine}`,
    ...report.checks.map((check) => `  ${check.ok ? '✓' : '✗'} ${check.name}: ${check.detail}`),
  ];
  if (report.perUser.length) {
    const rows = [['user', 'source', 'target', ''], ...report.perUser.map((u) => [u.user, String(u.source), String(u.target), u.source === u.target ? '' : 'MISMATCH'])];
    lines.push('  Per user:', ...table(rows).map((line) => `    ${line}`));
  }
  if (report.exhaustive) {
    const { missingIds, extraIds, differentIds } = report.exhaustive;
    for (const [what, ids] of [['Missing', missingIds], ['Extra', extraIds], ['Different', differentIds]] as const) {
      if (ids.length) lines.push(`  ${what} ids: ${ids.join(', ')}`);
    }
  }
  if (report.errors.length) lines.push('  Mismatches:', ...report.errors.map((e) => `    ${e}`));
  return lines;
}

function approvalLine(workflowId: string, approval: MigrationStatus['approval']): string {
  const who = approval.approvers.length ? approval.approvers.join(', ') : 'anyone';
  if (approval.decision) {
    const { by, reason, approved } = approval.decision;
    return `Approval: ${approved ? 'APPROVED' : 'REJECTED'} by ${by}${reason ? ` (${reason})` : ''}`;
  }
  if (approval.awaiting) return `Approval: WAITING for ${who} — memshift approve ${workflowId} --by NAME --reason TEXT`;
  return `Approval: not yet requested (approvers: ${who})`;
}

export function statusLines(workflowId: string, snapshot: Snapshot): string[] {
  const lines = [`Workflow: ${workflowId} (${snapshot.workflowType}) — ${snapshot.execution}`];
  const { status } = snapshot;
  if (!status) {
    lines.push(`Status query unanswered: ${snapshot.queryError} (is a memshift worker running on its task queue?)`);
  } else {
    lines.push(`Phase: ${status.phase}${status.paused ? ' (PAUSED)' : ''}${status.dryRun ? ' [dry run]' : ''}`);
    if (status.phasesDone.length) lines.push(`Done: ${status.phasesDone.join(' → ')}`);
    lines.push(`Copy: ${copyLine(status.copy)}`);
    if (status.report) lines.push(...reportLines(status.report));
    lines.push(approvalLine(workflowId, status.approval));
    if (status.notes.length) lines.push('Notes:', ...status.notes.map((note) => `  - ${note}`));
    if (status.outcome) lines.push(`Outcome: ${status.outcome}`);
    if (status.error) lines.push(`Error: ${status.error}`);
  }
  if (snapshot.failure) lines.push(`Failure: ${snapshot.failure}`);
  lines.push(`Web UI: ${webUiLink(workflowId)}`);
  return lines;
}


const POLL_MS = 1_000;
const PLAIN_PROGRESS_EVERY_MS = 5_000;

/** What a watcher shows while a workflow runs: a progress bar on a terminal, plain lines elsewhere. */
interface WatchView {
  phaseChanged(status: MigrationStatus): void;
  progressed(status: MigrationStatus): void;
  stop(): void;
}

function terminalView(): WatchView {
  const bars = new MultiBar(
    { format: 'copy [{bar}] {value}/{total} {percentage}% | {rate}/s | ETA {eta_text}', hideCursor: true, clearOnComplete: false },
    Presets.shades_classic,
  );
  let bar: ReturnType<MultiBar['create']> | null = null;
  return {
    phaseChanged: (status) => bars.log(`${new Date().toLocaleTimeString()} phase ${status.phase}${status.paused ? ' (paused)' : ''}\n`),
    progressed(status) {
      const { copy } = status;
      if (copy.total === 0) return;
      const payload = { rate: copy.rate, eta_text: formatSeconds(copy.etaSeconds) };
      if (!bar) bar = bars.create(copy.total, copy.copied, payload);
      bar.setTotal(copy.total);
      bar.update(copy.copied, payload);
    },
    stop: () => bars.stop(),
  };
}

function plainView(): WatchView {
  let lastPrinted = 0;
  let lastCopied = -1;
  return {
    phaseChanged: (status) => console.log(`${new Date().toISOString()} phase ${status.phase}${status.paused ? ' (paused)' : ''}`),
    progressed(status) {
      const { copy } = status;
      const due = Date.now() - lastPrinted >= PLAIN_PROGRESS_EVERY_MS;
      if (copy.total === 0 || copy.copied === lastCopied || !due) return;
      console.log(`${new Date().toISOString()} copy ${copyLine(copy)}`);
      lastPrinted = Date.now();
      lastCopied = copy.copied;
    },
    stop() {},
  };
}

/** Follows a workflow until it closes (or `until` holds); returns its last snapshot. */
export async function watch(handle: WorkflowHandle, until: (status: MigrationStatus) => boolean = () => false): Promise<Snapshot> {
  const view = process.stdout.isTTY ? terminalView() : plainView();
  let phase: string | null = null;
  let paused = false;
  try {
    for (;;) {
      const snapshot = await takeSnapshot(handle);
      const { status } = snapshot;
      if (status && (status.phase !== phase || status.paused !== paused)) {
        phase = status.phase;
        paused = status.paused;
        view.phaseChanged(status);
      }
      if (status) view.progressed(status);
      if (isClosed(snapshot) || (status && until(status))) return snapshot;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    view.stop();
  }
}
