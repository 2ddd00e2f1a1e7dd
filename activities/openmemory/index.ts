/**
 * Activities of the tenantSchemaUpgrade workflow (runbook 002: OpenMemory
 * v1.1 → v1.2 on SQLite or PostgreSQL). Each opens the database, does one
 * thing and closes it; inputs and results are small and serializable —
 * versions, change ids, SQL text, counts, paths — never rows.
 *
 * The workflow's sequence:
 *   planUpgrade (preflight; the whole of a dry run)
 *   → backupOpenMemory → approval (showing the plan)
 *   → applyOpenMemoryVersion for each plan step (rows checked under the write lock)
 *   → verifyOpenMemoryUpgrade (structure)
 *   → on rollback: revertOpenMemoryVersion, newest first, keeping every row;
 *     or, only when the operator accepts the loss, restoreLossesOpenMemory
 *     then restoreOpenMemory.
 *
 * Problems a person must fix are non-retryable ApplicationFailures whose type
 * names the problem (see FailureType); a lock held by a running OpenMemory
 * is a retryable 'DatabaseLocked', a lost connection a retryable
 * 'DatabaseUnavailable'. Any other database error is a non-retryable
 * 'DatabaseError': retrying the same statement on the same data fails the same way.
 *
 * Those that write or hold the database (backup, apply, verify, restore)
 * heartbeat while they run, so a worker that dies is noticed within the
 * workflow's heartbeatTimeout; apply's heartbeat says where it is, and its
 * next attempt reports that with what it then found.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { assertWritableFile } from '../files';
import {
  AppliedVersion,
  OpenMemoryBackup,
  OpenMemoryDatabase,
  OpenMemoryInspection,
  OpenMemoryTarget,
  RestoreLoss,
  RestoreResult,
  RevertedVersion,
  UpgradePlan,
  VerificationReport,
  applyVersion,
  inspect,
  plan,
  refuse,
  revertVersion,
  verify,
} from './database';
import { VERSIONS, findVersion, knownVersionIds, tablesTouchedBy } from './migrations';
import { PostgresOpenMemory } from './postgres';
import { SqliteOpenMemory } from './sqlite';

export type {
  AppliedVersion,
  ApplyRetry,
  OpenMemoryBackup,
  OpenMemoryInspection,
  OpenMemoryTarget,
  RestoreLoss,
  RestoreResult,
  RevertedVersion,
  UpgradePlan,
  VerificationReport,
} from './database';

/** Where the database stands: recorded versions, each version's changes present or missing, row counts. */
export async function inspectOpenMemory(input: { target: OpenMemoryTarget; targetVersion?: string }): Promise<OpenMemoryInspection> {
  return withDatabase(input.target, (db) => inspect(db, input.targetVersion));
}

/**
 * Preflight and dry run: the current state and, per pending version, the
 * change ids and the exact SQL apply would run. Refuses a database that is
 * not OpenMemory, an unknown version, and states no plan can finish safely.
 */
export async function planUpgrade(input: { target: OpenMemoryTarget; targetVersion: string }): Promise<UpgradePlan> {
  return withDatabase(input.target, (db) => plan(db, input.targetVersion));
}

/**
 * A verified, restorable copy: for SQLite the file copied to `backupFile`
 * (checked by integrity_check, row counts and hash); for PostgreSQL the
 * tables any version touches copied into the new schema `backupSchema`
 * (checked row for row). The location must be new; a retry of the same
 * workflow run finds its own backup there and returns it.
 *
 * The backup file must be writable by this worker (MEMSHIFT_WRITE_DIRS) and
 * must not be the database or one of its -wal/-shm/-journal files.
 */
export async function backupOpenMemory(input: {
  target: OpenMemoryTarget;
  backupFile?: string;
  backupSchema?: string;
}): Promise<OpenMemoryBackup> {
  const { target } = input;
  const location =
    target.engine === 'sqlite'
      ? await assertWritableFile(input.backupFile ?? refuse('InvalidTarget', 'an SQLite backup needs backupFile'), 'backup.file', [
          { file: target.path, what: 'the OpenMemory database' },
        ])
      : (input.backupSchema ?? refuse('InvalidTarget', 'a PostgreSQL backup needs backupSchema'));
  const run = activityContext()?.info.workflowExecution;
  const owner = run && `memshift backup of workflow ${run.workflowId}, run ${run.runId}`;
  return withDatabase(target, (db) => db.backup(location, tablesTouchedBy([...VERSIONS]), owner), heartbeats('backing up'));
}

/**
 * Applies one version in one transaction and records it in schema_version.
 * `changes` are the step's change ids from the approved plan; if the
 * database now needs others, nothing is done (PlanChanged). Already recorded:
 * a no-op, so retries are safe.
 */
export async function applyOpenMemoryVersion(input: {
  target: OpenMemoryTarget;
  version: string;
  changes: string[];
}): Promise<AppliedVersion> {
  const version =
    findVersion(input.version) ?? refuse('UnknownVersion', `unknown version "${input.version}"; known versions: ${knownVersionIds().join(', ')}`);
  const progress = heartbeats(`${version.id}: opening the database`);
  const ctx = activityContext();
  const retryOf = ctx && ctx.info.attempt > 1 ? { attempt: ctx.info.attempt, previousAttemptAt: lastStep(ctx.info.heartbeatDetails) } : undefined;
  return withDatabase(input.target, (db) => applyVersion(db, version, input.changes, { progress: progress?.report, retryOf }), progress);
}

/**
 * After the upgrade committed: every expected column, index and key is there
 * and every version up to the target is recorded. (Rows were checked by the
 * apply, under the write lock, before it committed.)
 */
export async function verifyOpenMemoryUpgrade(input: { target: OpenMemoryTarget; targetVersion: string }): Promise<VerificationReport> {
  return withDatabase(input.target, (db) => verify(db, input.targetVersion), heartbeats('verifying'));
}

/**
 * Rollback that keeps every write: undoes `changes` (the ones this run
 * applied) of one version in one transaction under the write locks. Refused
 * (RollbackWouldLoseRows, nothing changed) when the older schema cannot hold
 * every row; a no-op when the version is no longer recorded.
 */
export async function revertOpenMemoryVersion(input: { target: OpenMemoryTarget; version: string; changes: string[] }): Promise<RevertedVersion> {
  const version =
    findVersion(input.version) ?? refuse('UnknownVersion', `unknown version "${input.version}"; known versions: ${knownVersionIds().join(', ')}`);
  const progress = heartbeats(`reverting ${version.id}: opening the database`);
  return withDatabase(input.target, (db) => revertVersion(db, version, input.changes, progress?.report), progress);
}

/** What restoring `backup` would discard, per table: rows now, rows in the backup, rows now the backup lacks. Changes nothing. */
export async function restoreLossesOpenMemory(input: { target: OpenMemoryTarget; backup: OpenMemoryBackup }): Promise<RestoreLoss[]> {
  requireSameEngine(input.target, input.backup);
  return withDatabase(input.target, (db) => db.restoreLosses(input.backup), heartbeats('comparing with the backup'));
}

/**
 * Puts the backup back — SQLite byte for byte, PostgreSQL row for row (and
 * the tables the upgrade created dropped) — discarding every write since.
 * Only on the operator's explicit request, after restoreLossesOpenMemory.
 */
export async function restoreOpenMemory(input: { target: OpenMemoryTarget; backup: OpenMemoryBackup }): Promise<RestoreResult> {
  requireSameEngine(input.target, input.backup);
  return withDatabase(input.target, (db) => db.restore(input.backup), heartbeats('restoring the backup'));
}

export async function openOpenMemory(target: OpenMemoryTarget): Promise<OpenMemoryDatabase> {
  switch (target.engine) {
    case 'sqlite':
      return SqliteOpenMemory.open(target.path);
    case 'postgres':
      return PostgresOpenMemory.open(target);
    default:
      return refuse('InvalidTarget', `unknown engine "${(target as { engine: unknown }).engine}"; use sqlite or postgres`);
  }
}

/** Every activity the worker registers for tenantSchemaUpgrade. */
export const openMemoryActivities = {
  inspectOpenMemory,
  planUpgrade,
  backupOpenMemory,
  applyOpenMemoryVersion,
  verifyOpenMemoryUpgrade,
  revertOpenMemoryVersion,
  restoreLossesOpenMemory,
  restoreOpenMemory,
};

function requireSameEngine(target: OpenMemoryTarget, backup: OpenMemoryBackup): void {
  if (backup.engine !== target.engine) refuse('InvalidTarget', `a ${backup.engine} backup cannot restore a ${target.engine} database`);
}

async function withDatabase<T>(target: OpenMemoryTarget, work: (db: OpenMemoryDatabase) => Promise<T>, heartbeat?: Heartbeat): Promise<T> {
  heartbeat?.start();
  try {
    const db = await openOpenMemory(target);
    try {
      return await work(db);
    } finally {
      await db.close();
    }
  } catch (err) {
    throw classified(err);
  } finally {
    heartbeat?.stop();
  }
}

/** PostgreSQL error classes and codes, and socket errors, that clear by themselves: retried. */
const TRANSIENT_PG_CODES = new Set(['40001', '40P01', '53300', '57P01', '57P02', '57P03']);
const TRANSIENT_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH']);

/**
 * Failures already classified (ApplicationFailures, cancellation) pass
 * through. A connection that failed or broke is retryable; any other database
 * error is deterministic — the same statement on the same data fails again —
 * so it fails the activity at once, with the database's message (which names
 * tables and columns, not row contents).
 */
function classified(err: unknown): unknown {
  if (err instanceof TemporalFailure) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const message = err instanceof Error ? err.message : String(err);
  if (TRANSIENT_PG_CODES.has(code) || code.startsWith('08') || TRANSIENT_SOCKET_CODES.has(code) || /Connection terminated/i.test(message)) {
    return ApplicationFailure.retryable(`the database is unreachable or went away: ${message}`, 'DatabaseUnavailable');
  }
  return ApplicationFailure.nonRetryable(`database error${code ? ` ${code}` : ''}: ${message}`, 'DatabaseError');
}

/** What an attempt heartbeats: the next attempt of the same activity reads it back (Info.heartbeatDetails). */
interface HeartbeatDetails {
  attempt: number;
  step: string;
}

interface Heartbeat {
  start(): void;
  /** Says where the activity is now: heartbeated at once (Temporal throttles what it sends), and again every second. */
  report(step: string): void;
  stop(): void;
}

const HEARTBEAT_EVERY_MS = 1_000;

/**
 * Heartbeats every second while the activity runs, and at each `report`, so
 * a worker that dies mid-activity is noticed within the workflow's
 * heartbeatTimeout instead of its startToCloseTimeout. better-sqlite3 runs a
 * statement synchronously, so on SQLite no heartbeat leaves during one
 * statement, only between statements. Outside an activity (activities called
 * directly) there is nothing to tell: undefined.
 */
function heartbeats(initial: string): Heartbeat | undefined {
  const ctx = activityContext();
  if (!ctx) return undefined;
  let step = initial;
  let timer: NodeJS.Timeout | undefined;
  const beat = () => ctx.heartbeat({ attempt: ctx.info.attempt, step } satisfies HeartbeatDetails);
  return {
    start() {
      timer ??= setInterval(beat, HEARTBEAT_EVERY_MS);
    },
    report(now) {
      step = now;
      beat();
    },
    stop() {
      clearInterval(timer);
    },
  };
}

function lastStep(details: unknown): string | null {
  const step = (details as Partial<HeartbeatDetails> | undefined)?.step;
  return typeof step === 'string' ? step : null;
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // called directly, not as an activity
  }
}
