/**
 * Activities of the tenantSchemaUpgrade workflow (runbook 002: OpenMemory
 * v1.1 → v1.2 on SQLite or PostgreSQL). Each opens the database, does one
 * thing and closes it; inputs and results are small and serializable —
 * versions, change ids, SQL text, counts, paths — never rows.
 *
 * The workflow's sequence:
 *   planUpgrade (preflight; the whole of a dry run)
 *   → backupOpenMemory → approval (showing the plan)
 *   → applyOpenMemoryVersion for each plan step
 *   → verifyOpenMemoryUpgrade
 *   → restoreOpenMemory on rollback.
 *
 * Problems a person must fix are non-retryable ApplicationFailures whose type
 * names the problem (see FailureType); a lock held by a running OpenMemory
 * is a retryable 'DatabaseLocked'.
 *
 * Those that write or hold the database (backup, apply, verify, restore)
 * heartbeat while they run, so a worker that dies is noticed within the
 * workflow's heartbeatTimeout; apply's heartbeat says where it is, and its
 * next attempt reports that with what it then found.
 */
import { Context } from '@temporalio/activity';
import {
  AppliedVersion,
  OpenMemoryBackup,
  OpenMemoryDatabase,
  OpenMemoryInspection,
  OpenMemoryTarget,
  RestoreResult,
  UpgradePlan,
  VerificationReport,
  applyVersion,
  inspect,
  plan,
  refuse,
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
  RestoreResult,
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
 * (checked row for row). Re-running with the same name returns the same backup.
 */
export async function backupOpenMemory(input: {
  target: OpenMemoryTarget;
  backupFile?: string;
  backupSchema?: string;
}): Promise<OpenMemoryBackup> {
  const location =
    input.target.engine === 'sqlite'
      ? (input.backupFile ?? refuse('InvalidTarget', 'an SQLite backup needs backupFile'))
      : (input.backupSchema ?? refuse('InvalidTarget', 'a PostgreSQL backup needs backupSchema'));
  return withDatabase(input.target, (db) => db.backup(location, tablesTouchedBy([...VERSIONS])), heartbeats('backing up'));
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
 * After the upgrade: every expected column, index and key is there, every
 * version up to the target is recorded, every table has the row count of
 * `baselineRowCounts` (the plan's inspection), existing rows have user_id
 * NULL, and — with `backup` — every backed-up row is still there unchanged.
 */
export async function verifyOpenMemoryUpgrade(input: {
  target: OpenMemoryTarget;
  targetVersion: string;
  baselineRowCounts: Record<string, number>;
  backup?: OpenMemoryBackup;
}): Promise<VerificationReport> {
  return withDatabase(input.target, (db) => verify(db, input), heartbeats('verifying'));
}

/** Rollback: SQLite byte for byte, PostgreSQL row for row (and the tables the upgrade created dropped). */
export async function restoreOpenMemory(input: { target: OpenMemoryTarget; backup: OpenMemoryBackup }): Promise<RestoreResult> {
  if (input.backup.engine !== input.target.engine) {
    refuse('InvalidTarget', `a ${input.backup.engine} backup cannot restore a ${input.target.engine} database`);
  }
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

async function withDatabase<T>(target: OpenMemoryTarget, work: (db: OpenMemoryDatabase) => Promise<T>, heartbeat?: Heartbeat): Promise<T> {
  heartbeat?.start();
  try {
    const db = await openOpenMemory(target);
    try {
      return await work(db);
    } finally {
      await db.close();
    }
  } finally {
    heartbeat?.stop();
  }
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
