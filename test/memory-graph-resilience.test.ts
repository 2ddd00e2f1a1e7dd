/**
 * memoryGraphMigration under a crash and under a live writer, on real parts:
 * a worker process SIGKILLed in the middle of the relationships copy is
 * replaced and the result is exact (no duplicate edge); memorygraph itself
 * keeps writing to the SQLite source during copy and approval, and every
 * write is in FalkorDB after cutover.
 */
import type { Client } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printsOf } from '../activities/memorygraph/sync';
import { openFalkorStore } from '../activities/stores/falkordb';
import { MemorygraphSqliteStore } from '../activities/stores/memorygraph-sqlite';
import { approveUpdate } from '../workflows/messages';
import { memoryGraphMigration, type MemoryGraphPlanInput } from '../workflows/memory-graph-migration';
import { startTestFalkorDB, type TestFalkorDB } from './support/falkordb';
import { activityAttempts, connectClient, spawnWorkerProcess, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { populateWithMemorygraph } from './support/memorygraph';

let client: Client;
let falkor: TestFalkorDB;
const dir = tempDir();
let counter = 0;
const unique = (name: string) => `${name}-${Date.now().toString(36)}-${counter++}`;

beforeAll(async () => {
  [client, falkor] = await Promise.all([connectClient(), startTestFalkorDB()]);
});

afterAll(async () => {
  await falkor?.stop();
});

function plan(source: string, graph: string, overrides: Partial<MemoryGraphPlanInput> = {}): MemoryGraphPlanInput {
  return {
    source: { kind: 'sqlite', path: source },
    target: { kind: 'falkordb', url: falkor.url, graph },
    workDir: path.join(dir, 'runs'),
    cutover: { file: path.join(dir, `${unique('live')}.json`) },
    ...overrides,
  };
}

async function graphState(graph: string) {
  const store = await openFalkorStore({ url: falkor.url, graph });
  try {
    const counts = await store.counts();
    const prints = await printsOf(store);
    return { counts, prints };
  } finally {
    await store.close();
  }
}

const killed = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

describe('a worker SIGKILLed mid-relationships', () => {
  it('is replaced; the copy resumes and the target holds every relationship exactly once', async () => {
    const source = path.join(dir, 'crash.db');
    await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 600, relationships: 3000, seed: 'crash' });
    const taskQueue = uniqueQueue('memorygraph-crash');
    const graph = unique('crash');
    let worker = spawnWorkerProcess(taskQueue);
    const handle = await client.workflow.start(memoryGraphMigration, {
      taskQueue,
      workflowId: unique('mg-crash'),
      args: [plan(source, graph, { copy: { batchSize: 10, concurrency: 1 } })],
    });
    try {
      // Kill as soon as some, not all, relationships are in FalkorDB.
      const store = await openFalkorStore({ url: falkor.url, graph });
      for (;;) {
        const { relationships } = await store.counts();
        if (relationships > 0) {
          expect(relationships).toBeLessThan(3000);
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await store.close();
      worker.kill('SIGKILL');
      await killed(worker);
      worker = spawnWorkerProcess(taskQueue);
      const waiting = await waitForPhase(handle, 'await-approval', 300_000);
      expect(waiting.report?.ok).toBe(true);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      const result = await handle.result();
      expect([result.outcome, result.memories, result.relationships]).toEqual(['cut-over', 600, 3000]);
      expect(await activityAttempts(handle, 'copyMemoryGraph')).toBeGreaterThan(1);
      // The copy that was killed ran again on the new worker (from its last heartbeat, if one reached the server).
      expect(result.notes.join('\n')).toMatch(/Copied 3000 relationships in [\d.]+s/);

      const { counts, prints } = await graphState(graph);
      expect([counts.memories, counts.relationships]).toEqual([600, 3000]);
      expect(prints.relationships.size).toBe(3000); // distinct ids = edges: none duplicated
    } finally {
      worker.kill('SIGKILL');
      await killed(worker);
    }
  }, 600_000);
});

describe('a live writer', () => {
  it('keeps writing with memorygraph during copy and approval; catch-ups carry every write into FalkorDB', async () => {
    const source = path.join(dir, 'live.db');
    await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 300, relationships: 600, seed: 'live' });
    const taskQueue = uniqueQueue('memorygraph-live');
    const worker = await startWorker(taskQueue);
    const graph = unique('live');
    try {
      let writing = true;
      let rounds = 0;
      const writer = (async () => {
        // memorygraph's own code, a few memories and relationships at a time, as a busy MCP server would.
        // Each round starts Python; the pause leaves the worker a core on a 2-core machine.
        while (writing) {
          await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 3, relationships: 4, seed: 'live', offset: 300 + 3 * rounds++ });
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      const handle = await client.workflow.start(memoryGraphMigration, {
        taskQueue,
        workflowId: unique('mg-live'),
        args: [plan(source, graph, { copy: { batchSize: 20, concurrency: 1 }, catchUp: { every: '1s', maxRoundsWhileWaiting: 200 } })],
      });
      await waitForPhase(handle, 'await-approval', 300_000);
      const roundsBeforeApproval = rounds;
      const deadlineForWrites = Date.now() + 60_000;
      while (rounds < roundsBeforeApproval + 2 && Date.now() < deadlineForWrites) await new Promise((r) => setTimeout(r, 200));
      writing = false;
      await writer;
      expect(rounds).toBeGreaterThan(roundsBeforeApproval); // the writer kept writing while approval waited

      // While approval waits, catch-ups bring the target level with the source.
      const sourceStore = MemorygraphSqliteStore.openReadOnly(source);
      const sourcePrints = await printsOf(sourceStore);
      await sourceStore.close();
      expect(sourcePrints.memories.size).toBe(300 + 3 * rounds);
      const deadline = Date.now() + 60_000;
      while ((await graphState(graph)).prints.memories.size < sourcePrints.memories.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));

      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      expect((await handle.result()).outcome).toBe('cut-over');
      const { prints } = await graphState(graph);
      expect(prints.memories).toEqual(sourcePrints.memories);
      expect(prints.relationships).toEqual(sourcePrints.relationships);
    } finally {
      await worker.stop();
    }
  });
});
