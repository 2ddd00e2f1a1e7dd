/**
 * What every end-to-end test needs: a client on the suite's Temporal server,
 * a real memshift worker on a task queue of its own, and ways to watch a run.
 */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMemshiftWorker } from '../../workers/worker';
import { liveStatus } from '../../client/status-view';
import type { MigrationStatus, Phase } from '../../workflows/messages';

Runtime.install({ logger: new DefaultLogger('WARN') });

export const temporalAddress = () => process.env.TEMPORAL_ADDRESS!;

export async function connectClient(): Promise<Client> {
  return new Client({ connection: await Connection.connect({ address: temporalAddress() }) });
}

export function uniqueQueue(name: string): string {
  return `${name}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** A real worker in this process; stop() shuts it down and waits. */
export async function startWorker(taskQueue: string) {
  const { worker, run } = await createMemshiftWorker({
    connectionOptions: { address: temporalAddress() },
    namespace: 'default',
    taskQueue,
    workflowBundlePath: process.env.MEMSHIFT_WORKFLOW_BUNDLE,
  });
  const running = run();
  return {
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

export function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'memshift-test-'));
}

/** Polls the status query (with the copy's live heartbeat progress) until `done(status)` holds. */
export async function waitForStatus(
  handle: WorkflowHandle,
  done: (status: MigrationStatus) => boolean,
  timeoutMs = 120_000,
): Promise<MigrationStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: MigrationStatus | undefined;
  while (Date.now() < deadline) {
    last = await liveStatus(handle).catch(() => undefined);
    if (last && done(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Timed out waiting; last status: ${JSON.stringify(last)}`);
}

/**
 * After a pause: the store's count once it holds still and the live progress
 * agrees with it. Pages in flight commit first, and a loaded machine may take
 * seconds over that, so this polls rather than sleeping a fixed time.
 */
export async function heldStill(handle: WorkflowHandle, count: () => Promise<number>, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let previous: number | undefined;
  let copied: number | undefined;
  while (Date.now() < deadline) {
    const held = await count();
    copied = (await liveStatus(handle)).copy.copied;
    if (held === previous && copied === held) return held;
    previous = held;
    await new Promise((r) => setTimeout(r, 1_500));
  }
  throw new Error(`The paused copy did not hold still: the store held ${previous}, the live progress said ${copied}`);
}

/**
 * Waits until a live writer's count of each of `kinds` (every kind it counts,
 * by default) has passed `since`: the writer shares a loaded machine, so a
 * test polls for its progress rather than sleeping a fixed time.
 */
export async function writesSince<Kind extends string>(
  writer: { counts(): Record<Kind, number> },
  since: Record<Kind, number>,
  { kinds = Object.keys(since) as Kind[], timeoutMs = 30_000 }: { kinds?: Kind[]; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const stalled = () => kinds.filter((kind) => writer.counts()[kind] <= since[kind]);
  while (stalled().length > 0) {
    if (Date.now() > deadline) throw new Error(`the writer stalled: no ${stalled().join(', ')} since ${JSON.stringify(since)}, now ${JSON.stringify(writer.counts())}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const waitForPhase = (handle: WorkflowHandle, phase: Phase, timeoutMs?: number) =>
  waitForStatus(handle, (s) => s.phase === phase, timeoutMs);

/** The innermost cause's message of a failed workflow: what a person reads. */
export async function failureMessage(handle: WorkflowHandle): Promise<string> {
  const err = await handle.result().then(
    () => null,
    (e: unknown) => e,
  );
  if (!err) throw new Error(`Workflow ${handle.workflowId} succeeded; a failure was expected`);
  let cause = err as Error & { cause?: unknown };
  while (cause.cause instanceof Error) cause = cause.cause as Error & { cause?: unknown };
  return cause.message;
}

/** A worker in its own process, as in production, so a test can SIGKILL it. */
export function spawnWorkerProcess(taskQueue: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../../workers/main.ts')], {
    env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), MEMSHIFT_TASK_QUEUE: taskQueue, MEMSHIFT_LOG_LEVEL: 'WARN', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** How many attempts of an activity type the workflow started: 1 means a failure was not retried. */
export async function activityAttempts(handle: WorkflowHandle, activityType: string): Promise<number> {
  const history = await handle.fetchHistory();
  const scheduled = new Set<string>();
  let attempts = 0;
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === activityType) scheduled.add(String(event.eventId));
    const started = event.activityTaskStartedEventAttributes;
    if (started && scheduled.has(String(started.scheduledEventId))) attempts = Math.max(attempts, started.attempt ?? 1);
  }
  return attempts;
}

/** The type of the innermost ApplicationFailure of a failed workflow (e.g. 'BatchCheckMismatch'). */
export async function failureType(handle: WorkflowHandle): Promise<string | undefined> {
  const err = await handle.result().then(() => null, (e: unknown) => e);
  let type: string | undefined;
  for (let cause = err as (Error & { cause?: unknown; type?: string }) | undefined; cause; cause = cause.cause as typeof cause) {
    if (cause.type) type = cause.type;
  }
  return type;
}
