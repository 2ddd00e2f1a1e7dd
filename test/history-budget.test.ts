/**
 * History stays small for a copy of any length: a long copy in tiny batches
 * (hundreds of pages) with a long pause adds no per-page or per-second
 * events. Live progress travels in the copy's heartbeat, which `memshift
 * status` and the Web UI read without writing history.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { pauseSignal, rejectSignal, resumeSignal } from '../workflows/messages';
import { sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 2_000;
const BATCH = 5; // 400 pages
const PAUSE_MS = 20_000;
/** Temporal refuses signals after 10,000 per run; memshift's own budget for a whole run is 1,000 events. */
const RUN_EVENT_BUDGET = 1_000;

let client: Client;
let worker: { stop(): Promise<void> };
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('history-budget');
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 16, deletedEvery: 0 });
  [client, qdrant] = await Promise.all([connectClient(), startTestQdrant()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await qdrant?.stop();
});

it(`a ${MEMORIES / BATCH}-page copy with a ${PAUSE_MS / 1000}s pause stays far inside the event budget, with progress visible throughout`, async () => {
  const handle = await client.workflow.start(sqliteVecMigration, {
    taskQueue,
    workflowId: uniqueName('budget'),
    args: [
      {
        source: { path: sourcePath },
        target: { kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') },
        copy: { batchSize: BATCH, concurrency: 1 },
        cutover: { file: path.join(dir, 'live.json') },
      },
    ],
  });
  qdrant.double?.faults.set({ latencyMs: 10, onlyPaths: /\/points/ }); // a copy long enough to watch
  // Live progress (from the heartbeat) is visible long before the copy ends.
  const early = await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= 50);
  expect(early.copy.copied).toBeLessThan(MEMORIES);
  await handle.signal(pauseSignal);
  const paused = await waitForStatus(handle, (s) => s.paused);
  await new Promise((r) => setTimeout(r, PAUSE_MS));
  await handle.signal(resumeSignal);
  const waiting = await waitForPhase(handle, 'await-approval');
  qdrant.double?.faults.clear();
  expect(waiting.copy.copied).toBe(MEMORIES); // the copy's final report reached the workflow
  expect(paused.copy.copied).toBeLessThan(MEMORIES);
  await handle.signal(rejectSignal, { by: 'test' });
  await handle.result();

  const events = (await handle.fetchHistory()).events ?? [];
  const progressSignals = events.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'copyProgress');
  // At most one a minute while young, and one at the end: not one per page, nor one per second of pause.
  expect(progressSignals.length).toBeLessThanOrEqual(3);
  expect(events.length).toBeLessThan(150);
  expect(events.length).toBeLessThan(RUN_EVENT_BUDGET);
});

const PARTITIONS = 8;

it(`a copy in ${PARTITIONS} ranges of tiny batches, paused for ${PAUSE_MS / 1000}s, adds a few events per range and no progress signals`, async () => {
  const plan: SqliteVecPlanInput = {
    source: { path: sourcePath },
    target: { kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') },
    copy: { batchSize: BATCH, concurrency: 1, partitions: PARTITIONS },
    cutover: { file: path.join(dir, 'live-ranges.json') },
  };
  // Eight ranges share the 400 pages: slow each write down before the run starts, so every range is still copying when the test pauses it.
  qdrant.double?.faults.set({ latencyMs: 40, onlyPaths: /\/points/ });
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('budget-ranges'), args: [plan] });
  const early = await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= 50);
  expect(early.copy.copied).toBeLessThan(MEMORIES);
  await handle.signal(pauseSignal);
  await waitForStatus(handle, (s) => s.paused);
  await new Promise((r) => setTimeout(r, PAUSE_MS));
  await handle.signal(resumeSignal);
  const waiting = await waitForPhase(handle, 'await-approval');
  qdrant.double?.faults.clear();
  expect(waiting.copy).toMatchObject({ copied: MEMORIES, ranges: { count: PARTITIONS, done: PARTITIONS } });
  expect(waiting.report?.exhaustive?.compared).toBe(MEMORIES);
  await handle.signal(rejectSignal, { by: 'test' });
  await handle.result();

  const events = (await handle.fetchHistory()).events ?? [];
  expect(events.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'copyProgress')).toHaveLength(0);
  // Per range: its copy and its validation activity (scheduled, started, completed, and a workflow task); the rest as unpartitioned.
  expect(events.length).toBeLessThan(150 + PARTITIONS * 2 * 6);
  expect(events.length).toBeLessThan(RUN_EVENT_BUDGET);
  console.log(`partitioned run: ${events.length} events for ${MEMORIES / BATCH} pages in ${PARTITIONS} ranges`);

  // Every activity carries a summary for the Web UI: phase, step and range.
  const summaries = events
    .filter((e) => e.activityTaskScheduledEventAttributes)
    .map((e) => defaultPayloadConverter.fromPayload<string>(e.userMetadata!.summary!));
  expect(summaries).toContain('copy: copy sqlite vec range (range 3)');
  expect(summaries).toContain('preflight: preflight sqlite vec');
  expect(summaries.filter((s) => /^validate: validate sqlite vec range \(range \d+\)$/.test(s))).toHaveLength(PARTITIONS);
});
