/**
 * memoryGraphMigration's rollback into a target that held data before the
 * run (existingTarget: merge), on real parts (Temporal, memorygraph's SQLite
 * store as source, FalkorDB as target): after the service has created,
 * changed and deleted memories and relationships in the target, rollback
 * keeps every write in the source, removes this run's writes from the target
 * and puts back what it held before exactly as backed up — also when the
 * worker running the rollback is SIGKILLed half-way. A rejection puts it
 * back too.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asRelationship, memoryPoint, relationshipPoint } from '../activities/memorygraph/graph-store';
import { copyIds, printsOf, type Prints } from '../activities/memorygraph/sync';
import { openFalkorStore, type FalkorStore } from '../activities/stores/falkordb';
import { MemorygraphSqliteStore } from '../activities/stores/memorygraph-sqlite';
import { approveUpdate, rejectUpdate, rollbackUpdate, type RollbackRequest } from '../workflows/messages';
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

async function withFalkor<T>(graph: string, use: (store: FalkorStore) => Promise<T>): Promise<T> {
  const store = await openFalkorStore({ url: falkor.url, graph });
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

async function withSource<T>(file: string, use: (store: MemorygraphSqliteStore) => Promise<T>): Promise<T> {
  const store = MemorygraphSqliteStore.openWritable(file);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

const plain = (prints: Prints) => ({ memories: Object.fromEntries(prints.memories), relationships: Object.fromEntries(prints.relationships) });
const at = '2026-02-01T00:00:00+00:00';
const memory = (id: string, title: string) => memoryPoint({ id, type: 'general', title, content: `${title} (content)`, tags: ['t'], importance: 0.5, confidence: 0.8, usage_count: 0, created_at: at, updated_at: at });
const edge = (id: string, from: string, to: string) => relationshipPoint(id, 'SOLVES', from, to, { strength: 0.7, confidence: 0.9, created_at: at, valid_from: at, recorded_at: at });

/** Items named by their role in the scenario. */
interface Scenario {
  source: string;
  graph: string;
  live: string;
  /** The target's fingerprints before the run: what its backup must hold, and what rollback must put back. */
  before: Prints;
  /** Held before and in the source alike (an earlier run's): one changed in the source during the run, one by the service after cutover. */
  sharedChangedInSource: string;
  sharedChangedAfterCutover: string;
  /** Held before, not in the source. */
  targetOnlyMemory: string;
  targetOnlyEdge: string;
}

/**
 * A memorygraph SQLite source, and a FalkorDB target already holding a few of
 * its memories and relationships (same ids and contents) and some of its own.
 */
async function scenario(seed: string): Promise<Scenario> {
  const source = path.join(dir, `${unique(seed)}.db`);
  await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 30, relationships: 60, seed });
  const graph = unique(seed);
  const live = path.join(dir, `${unique('live')}.json`);
  writeFileSync(live, JSON.stringify({ kind: 'sqlite', url: source, name: `sqlite://${source}`, workflowId: 'before' }));
  return withSource(source, (from) =>
    withFalkor(graph, async (to) => {
      const shared = (await from.read('relationships', null, 3)).points;
      const sharedMemories = [...new Set(shared.flatMap((p) => [asRelationship(p).from, asRelationship(p).to]))];
      await copyIds(from, to, 'memories', sharedMemories);
      await copyIds(from, to, 'relationships', shared.map((p) => p.id));
      await to.upsert('memories', [memory('held-1', 'held before the run'), memory('held-2', 'also held before')]);
      await to.upsert('relationships', [edge('held-edge-1', 'held-1', 'held-2'), edge('held-edge-2', 'held-2', sharedMemories[0])]);
      return {
        source,
        graph,
        live,
        before: await printsOf(to),
        sharedChangedInSource: sharedMemories[0],
        sharedChangedAfterCutover: sharedMemories[1],
        targetOnlyMemory: 'held-1',
        targetOnlyEdge: 'held-edge-1',
      };
    }),
  );
}

async function retitle(store: MemorygraphSqliteStore | FalkorStore, id: string, title: string) {
  const [point] = await store.retrieve('memories', [id]);
  await store.upsert('memories', [memoryPoint({ ...(point.payload.properties as object), title })]);
}

/** Starts the migration into the scenario's target (existingTarget: merge) and waits for approval. */
async function untilApproval(s: Scenario, taskQueue: string, overrides: Partial<MemoryGraphPlanInput> = {}): Promise<WorkflowHandle<typeof memoryGraphMigration>> {
  const plan: MemoryGraphPlanInput = {
    source: { kind: 'sqlite', path: s.source },
    target: { kind: 'falkordb', url: falkor.url, graph: s.graph },
    existingTarget: 'merge',
    workDir: path.join(dir, 'runs'),
    cutover: { file: s.live },
    copy: { batchSize: 20, concurrency: 1 },
    ...overrides,
  };
  const handle = await client.workflow.start(memoryGraphMigration, { taskQueue, workflowId: unique('mg-rollback'), args: [plan] });
  const waiting = await waitForPhase(handle, 'await-approval', 300_000);
  expect(waiting.report?.ok).toBe(true);
  return handle;
}

/** Runs the migration to its rollback window, the source changing one shared memory on the way (a catch-up copies it over the target's). */
async function cutOver(s: Scenario, taskQueue: string): Promise<WorkflowHandle<typeof memoryGraphMigration>> {
  const handle = await untilApproval(s, taskQueue, { rollbackWindow: '10m' });
  await withSource(s.source, (store) => retitle(store, s.sharedChangedInSource, 'changed in the source during the run'));
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  await waitForPhase(handle, 'rollback-window', 300_000);
  expect(JSON.parse(readFileSync(s.live, 'utf8')).kind).toBe('falkordb');
  await withFalkor(s.graph, async (target) => {
    // The cutover's catch-up wrote the source's change over an item the target held before.
    expect((await printsOf(target)).memories.get(s.sharedChangedInSource)).not.toBe(s.before.memories.get(s.sharedChangedInSource));
  });
  return handle;
}

/**
 * The service's writes to the live target: two new memories and a new edge
 * (to a memory this run wrote), three changed memories (one this run wrote,
 * one shared, one the target alone held), and deletions (an edge and a
 * memory with its edges this run wrote, an edge the target alone held).
 * Returns the ids it created and the target's fingerprints after them.
 */
async function serviceWrites(s: Scenario) {
  return withFalkor(s.graph, async (target) => {
    const prints = await printsOf(target);
    const held = (entity: 'memories' | 'relationships', id: string) => s.before[entity].has(id);
    const runMemories = [...prints.memories.keys()].filter((id) => !held('memories', id));
    const [pinnedByNewEdge, changed, deleted] = runMemories;
    const edges = (await target.retrieve('relationships', [...prints.relationships.keys()])).map((p) => ({ id: p.id, ...asRelationship(p) }));
    const deletedEdge = edges.find((e) => !held('relationships', e.id) && ![e.from, e.to].includes(deleted))!.id;

    await target.upsert('memories', [memory('svc-memory-1', 'created after cutover'), memory('svc-memory-2', 'also created after cutover')]);
    await target.upsert('relationships', [edge('svc-edge', 'svc-memory-1', pinnedByNewEdge)]);
    await retitle(target, changed, 'run-written, changed after cutover');
    await retitle(target, s.sharedChangedAfterCutover, 'shared, changed after cutover');
    await retitle(target, s.targetOnlyMemory, 'held before, changed after cutover');
    await target.remove('relationships', [deletedEdge, s.targetOnlyEdge, ...edges.filter((e) => [e.from, e.to].includes(deleted)).map((e) => e.id)]);
    await target.remove('memories', [deleted]);
    expect((await target.retrieve('memories', [deleted])).length).toBe(0);

    const created = { memories: ['svc-memory-1', 'svc-memory-2'], relationships: ['svc-edge'] };
    const written = { memories: [...created.memories, changed, s.sharedChangedAfterCutover, s.targetOnlyMemory], relationships: created.relationships };
    return { created, written, pinnedByNewEdge, after: await printsOf(target) };
  });
}

/** What the source must hold after rollback: what it held at cutover, with every item the service wrote in the target after cutover as it wrote it. */
function withWrites(sourceAtCutover: Prints, targetAfter: Prints, written: Record<'memories' | 'relationships', string[]>): Prints {
  const expected = { memories: new Map(sourceAtCutover.memories), relationships: new Map(sourceAtCutover.relationships) };
  for (const entity of ['memories', 'relationships'] as const) for (const id of written[entity]) expected[entity].set(id, targetAfter[entity].get(id)!);
  return expected;
}

function only(prints: Prints, ids: Record<'memories' | 'relationships', string[]>): Prints {
  return { memories: new Map(ids.memories.map((id) => [id, prints.memories.get(id)!])), relationships: new Map(ids.relationships.map((id) => [id, prints.relationships.get(id)!])) };
}

const union = (a: Prints, b: Prints): Prints => ({ memories: new Map([...a.memories, ...b.memories]), relationships: new Map([...a.relationships, ...b.relationships]) });

const killed = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

describe('rollback after post-cutover writes into a target that held data before the run', () => {
  it('keeps every write in the source, removes this run\'s writes from the target, puts back what it held as backed up, and leaves what the service created there', async () => {
    const s = await scenario('merge-keep');
    const taskQueue = uniqueQueue('memorygraph-rollback');
    const worker = await startWorker(taskQueue);
    try {
      const handle = await cutOver(s, taskQueue);
      const sourceAtCutover = await withSource(s.source, printsOf);
      const service = await serviceWrites(s);

      await handle.executeUpdate(rollbackUpdate, { args: [{ by: 'alice', reason: 'drill' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('rolled-back');
      expect(JSON.parse(readFileSync(s.live, 'utf8')).workflowId).toBe('before');
      const notes = result.notes.join('\n');
      expect(notes).toMatch(/the 2 memories and 1 relationships the service created in .* after cutover are kept there/);
      expect(notes).toMatch(new RegExp(`1 of this run's memories kept because a relationship not removed touches them: ${service.pinnedByNewEdge}`));
      const [m, r] = [s.before.memories.size, s.before.relationships.size];
      expect(notes).toContain(`${m} of the ${m} memories and ${r} of the ${r} relationships it held before the run read back equal to its backup`);

      expect(plain(await withSource(s.source, printsOf))).toEqual(plain(withWrites(sourceAtCutover, service.after, service.written)));
      // The target: exactly what it held before, plus what the service created there and the memory its new edge needs.
      const expected = union(s.before, only(service.after, { memories: [...service.created.memories, service.pinnedByNewEdge], relationships: service.created.relationships }));
      expect(plain(await withFalkor(s.graph, printsOf))).toEqual(plain(expected));
    } finally {
      await worker.stop();
    }
  }, 600_000);

  it('restore-backup: the same with the worker SIGKILLed half-way through the rollback, and the target exactly its backup', async () => {
    const s = await scenario('merge-kill');
    const taskQueue = uniqueQueue('memorygraph-rollback-kill');
    let worker = spawnWorkerProcess(taskQueue);
    try {
      const handle = await cutOver(s, taskQueue);
      const sourceAtCutover = await withSource(s.source, printsOf);
      const service = await serviceWrites(s);

      const request: RollbackRequest = { by: 'alice', reason: 'drill', mode: 'restore-backup' };
      await handle.executeUpdate(rollbackUpdate, { args: [request] });
      // Killed once the service is switched back to the source, before the target is cleaned (the settle rounds pause a second first).
      while (JSON.parse(readFileSync(s.live, 'utf8')).workflowId !== 'before') await new Promise((r) => setTimeout(r, 10));
      worker.kill('SIGKILL');
      await killed(worker);
      expect((await withFalkor(s.graph, printsOf)).memories.has(service.pinnedByNewEdge)).toBe(true);
      worker = spawnWorkerProcess(taskQueue);

      const result = await handle.result();
      expect(result.outcome).toBe('rolled-back');
      expect(await activityAttempts(handle, 'rollbackMemoryGraph')).toBeGreaterThan(1);
      expect(result.notes.join('\n')).toMatch(/restore-backup: what the service created in .* after cutover is gone from it too/);
      expect(JSON.parse(readFileSync(s.live, 'utf8')).workflowId).toBe('before');
      expect(plain(await withSource(s.source, printsOf))).toEqual(plain(withWrites(sourceAtCutover, service.after, service.written)));
      expect(plain(await withFalkor(s.graph, printsOf))).toEqual(plain(s.before));
    } finally {
      worker.kill('SIGKILL');
      await killed(worker);
    }
  }, 600_000);
});

describe('rejection of a run into a target that held data before it', () => {
  it("removes this run's writes and puts back an item a catch-up wrote over, leaving the target exactly as backed up", async () => {
    const s = await scenario('merge-reject');
    const taskQueue = uniqueQueue('memorygraph-reject');
    const worker = await startWorker(taskQueue);
    try {
      const handle = await untilApproval(s, taskQueue, { catchUp: { every: '1s', maxRoundsWhileWaiting: 300 } });
      await withSource(s.source, (store) => retitle(store, s.sharedChangedInSource, 'changed in the source while approval waits'));
      const changed = await withSource(s.source, async (store) => (await printsOf(store)).memories.get(s.sharedChangedInSource));
      const deadline = Date.now() + 120_000;
      while ((await withFalkor(s.graph, printsOf)).memories.get(s.sharedChangedInSource) !== changed) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 200));
      }
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'alice', reason: 'not now' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('rejected');
      const [m, r] = [s.before.memories.size, s.before.relationships.size];
      expect(result.notes.join('\n')).toContain(`${m} of the ${m} memories and ${r} of the ${r} relationships it held before the run read back equal to its backup`);
      expect(plain(await withFalkor(s.graph, printsOf))).toEqual(plain(s.before));
    } finally {
      await worker.stop();
    }
  }, 600_000);
});

describe('rollback into a SQLite file this run created', () => {
  it('restore-backup: carries the service\'s writes into the source and removes the file, which then holds nothing', async () => {
    const source = path.join(dir, `${unique('sqlite-source')}.db`);
    await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 10, relationships: 20, seed: 'sq' });
    const target = path.join(dir, `${unique('sqlite-target')}.db`);
    const live = path.join(dir, `${unique('live')}.json`);
    writeFileSync(live, JSON.stringify({ kind: 'sqlite', url: source, name: `sqlite://${source}`, workflowId: 'before' }));
    const taskQueue = uniqueQueue('memorygraph-rollback-sqlite');
    const worker = await startWorker(taskQueue);
    try {
      const handle = await client.workflow.start(memoryGraphMigration, {
        taskQueue,
        workflowId: unique('mg-rollback-sqlite'),
        args: [{ source: { kind: 'sqlite', path: source }, target: { kind: 'sqlite', path: target }, workDir: path.join(dir, 'runs'), cutover: { file: live }, rollbackWindow: '10m' }],
      });
      await waitForPhase(handle, 'await-approval', 300_000);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      await waitForPhase(handle, 'rollback-window', 300_000);
      const sourceAtCutover = await withSource(source, printsOf);
      const after = await withSource(target, async (store) => {
        await store.upsert('memories', [memory('svc-memory', 'created in SQLite after cutover')]);
        await retitle(store, [...sourceAtCutover.memories.keys()][0], 'changed in SQLite after cutover');
        return printsOf(store);
      });

      await handle.executeUpdate(rollbackUpdate, { args: [{ by: 'alice', mode: 'restore-backup' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('rolled-back');
      expect(result.notes.join('\n')).toMatch(/which this run created and which now holds nothing, removed/);
      expect(existsSync(target)).toBe(false);
      const written = { memories: ['svc-memory', [...sourceAtCutover.memories.keys()][0]], relationships: [] };
      expect(plain(await withSource(source, printsOf))).toEqual(plain(withWrites(sourceAtCutover, after, written)));
    } finally {
      await worker.stop();
    }
  }, 600_000);
});
