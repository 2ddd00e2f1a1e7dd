/**
 * qdrantCollectionRebuild while mem0 keeps writing (issue #7): a writer adds,
 * updates or deletes a memory every 150 ms through the serving alias, from
 * before the start until after the end. The rebuild must still validate, cut
 * over without a write freeze, and leave every write in whichever collection
 * is live at the end — the new one after a cutover, the legacy one after a
 * rollback. Real Temporal, the Qdrant double or QDRANT_URL.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryPoint } from '../activities/stores/contract';
import { QdrantCollection, listAliases, listCollections, updateAliases } from '../activities/stores/qdrant';
import { generateMem0Collections, mem0Memory } from '../scripts/generate-mem0-collection';
import { approveUpdate, pauseSignal, resumeSignal, rollbackSignal, statusQuery } from '../workflows/messages';
import { qdrantCollectionRebuild, type QdrantRebuildPlanInput } from '../workflows/qdrant-collection-rebuild';
import { connectClient, failureMessage, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus, writesSince } from './support/harness';
import { expectHolds, startMem0Writer } from './support/mem0-writer';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 1_000;
const DIMENSIONS = 32;
/** The worker sends it on every Qdrant request; it must never reach history. */
process.env.QDRANT_API_KEY ??= 'memshift-history-probe-7c41d0';

let client: Client;
let worker: { stop(): Promise<void> };
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('rebuild-live');
const workDir = tempDir();

beforeAll(async () => {
  [client, qdrant] = await Promise.all([connectClient(), startTestQdrant()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await qdrant?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readAll(collection: string): Promise<Map<string, MemoryPoint>> {
  const store = new QdrantCollection(qdrant.url, collection);
  const points = new Map<string, MemoryPoint>();
  let cursor: string | null = null;
  do {
    const page = await store.readPage(cursor, 1_000);
    page.points.forEach((p) => points.set(p.id, p));
    cursor = page.next;
  } while (cursor !== null);
  return points;
}

/** A mem0 collection already served through `<base>_live`, as a production one is. */
async function servedDataset(count = MEMORIES): Promise<string> {
  const base = uniqueName('mem0');
  await generateMem0Collections(qdrant.url, { collection: base, count, dimensions: DIMENSIONS, entitiesPerUser: 0 });
  await updateAliases(qdrant.url, [{ op: 'create', alias: `${base}_live`, collection: base }]);
  return base;
}

const planFor = (base: string, overrides: Partial<QdrantRebuildPlanInput> = {}): QdrantRebuildPlanInput => ({
  qdrant: { url: qdrant.url },
  collections: [{ source: base, target: `${base}_v2`, alias: `${base}_live` }],
  workDir,
  copy: { batchSize: 100, concurrency: 1 },
  catchUp: { every: '1s' },
  approval: { approvers: ['alice'] },
  retention: '0s',
  ...overrides,
});

const start = (plan: QdrantRebuildPlanInput) =>
  client.workflow.start(qdrantCollectionRebuild, { taskQueue, workflowId: uniqueName('live'), args: [plan] });

const aliasTarget = async (alias: string) => (await listAliases(qdrant.url)).find((b) => b.alias === alias)?.collection;

/** History as text, payloads decoded: start input, activity inputs, results, failures, heartbeat details. */
async function historyText(handle: WorkflowHandle): Promise<string> {
  const history = await handle.fetchHistory();
  return JSON.stringify(history, (_key, value) => (value instanceof Uint8Array ? Buffer.from(value).toString('utf8') : value));
}

describe('a steady writer (every 150 ms: adds, updates, deletes)', () => {
  it('does not keep the rebuild from cutting over, and every one of its writes is in the new collection', async () => {
    const base = await servedDataset();
    const writer = startMem0Writer(qdrant.url, `${base}_live`, await readAll(base), { dimensions: DIMENSIONS });
    const handle = await start(planFor(base));

    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report?.ok, JSON.stringify(waiting.report?.checks)).toBe(true);
    expect(waiting.report?.checks.find((c) => c.name === `${base}: writes since the watermark`)?.detail).toMatch(/\d+ added, \d+ changed, \d+ deleted since the last catch-up/);
    const atApproval = writer.counts();
    await waitForStatus(handle, (s) => s.notes.some((n) => n.startsWith('Caught up while awaiting approval')), 30_000);
    // On the double, the alias swap takes a second: writes in that gap land in legacy after the last catch-up.
    qdrant.double?.faults.set({ latencyMs: 1_000, onlyPaths: /\/collections\/aliases$/ });
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();
    qdrant.double?.faults.clear();
    expect(result.outcome, result.notes.join('\n')).toBe('cut-over');
    expect(await aliasTarget(`${base}_live`)).toBe(`${base}_v2`);

    await writesSince(writer, atApproval);
    await writesSince(writer, writer.counts(), { kinds: ['add'] }); // the writer goes on, now into the new collection
    const expected = await writer.stop();
    await expectHolds(qdrant.url, `${base}_v2`, expected);
    expect(result.notes.join('\n')).toMatch(qdrant.double ? /Catch-up right after the swap: [1-9]/ : /Catch-up right after the swap: \d+ added/);
    expect(result.caughtUp.added + result.caughtUp.changed + result.caughtUp.deleted).toBeGreaterThan(0);
  });

  it('through copy, approval wait, cutover and rollback: the legacy collection ends up holding every write; history holds no memory content or credential', async () => {
    const base = await servedDataset();
    const writer = startMem0Writer(qdrant.url, `${base}_live`, await readAll(base), { dimensions: DIMENSIONS, seed: 12 });
    const handle = await start(planFor(base, { retention: '1h' }));

    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report?.ok, JSON.stringify(waiting.report?.checks)).toBe(true);
    await sleep(2_500); // writes keep landing in legacy while the approver reads
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'rollback-window');
    expect(await aliasTarget(`${base}_live`)).toBe(`${base}_v2`);

    await writesSince(writer, writer.counts()); // post-cutover writes: they land only in the new collection
    await handle.signal(rollbackSignal, { by: 'alice', reason: 'recall regressed' });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(await aliasTarget(`${base}_live`)).toBe(base);
    expect(result.carriedBack!.added + result.carriedBack!.changed + result.carriedBack!.deleted).toBeGreaterThan(0);
    expect(result.carriedBack!.conflicts).toBe(0);

    await sleep(1_000); // and on, into legacy again
    const expected = await writer.stop();
    await expectHolds(qdrant.url, base, expected);
    expect(await listCollections(qdrant.url)).toContain(`${base}_v2`); // kept for inspection

    const history = await historyText(handle);
    expect(history).toContain('carryBackPostCutoverWrites'); // the scan reads real activity events
    const contents = [...writer.texts(), ...[...(await readAll(base)).values()].slice(0, 50).map((p) => p.payload.data as string)];
    expect(contents.filter((text) => history.includes(text))).toEqual([]);
    expect(history).not.toContain(process.env.QDRANT_API_KEY);
  });
});

describe('validation under a live writer still catches what the copy got wrong', () => {
  it('a point whose vector was altered in the new collection after the copy wrote it fails validation, named by id', async () => {
    const base = await servedDataset(2_000);
    const source = await readAll(base);
    const [altered] = [...source.keys()].sort(); // first in scroll order: in the copy's first batch
    const writer = startMem0Writer(qdrant.url, `${base}_live`, source, { dimensions: DIMENSIONS, seed: 13, spare: new Set([altered]) });
    qdrant.double?.faults.set({ latencyMs: 20, onlyPaths: new RegExp(`${base}_v2/points$`) });
    const handle = await start(planFor(base, { copy: { batchSize: 10, concurrency: 1 }, validation: { sampleSize: 10_000 } }));
    try {
      const target = new QdrantCollection(qdrant.url, `${base}_v2`);
      while ((await target.retrieve([altered]).catch(() => [])).length === 0) await sleep(50); // until the copy wrote it
      await handle.signal(pauseSignal, { by: 'alice' });
      await waitForStatus(handle, (s) => s.paused);
      const [copy] = await target.retrieve([altered]);
      await target.upsert([{ ...copy, vector: copy.vector.map((x) => -x) }]);
      qdrant.double?.faults.clear();
      await handle.signal(resumeSignal, { by: 'alice' });

      const message = await failureMessage(handle);
      expect(message).toMatch(/^Validation failed, cutover blocked/);
      const { report } = await handle.query(statusQuery);
      expect(report?.errors.join('\n')).toContain(`${altered}: embedding mismatch`);
      expect(await aliasTarget(`${base}_live`)).toBe(base);
    } finally {
      qdrant.double?.faults.clear();
      await writer.stop();
    }
  });
});

describe('rollback after post-cutover writes', () => {
  it('carries adds, updates and deletes back into legacy, deletes nothing else there, and names a point changed on both sides', async () => {
    const base = await servedDataset(300);
    const before = await readAll(base);
    const handle = await start(planFor(base, { retention: '1h' }));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'rollback-window');

    const served = new QdrantCollection(qdrant.url, `${base}_live`);
    const legacy = new QdrantCollection(qdrant.url, base);
    const [updated, deleted, bothSides] = [...before.values()].slice(0, 3);
    const added = mem0Memory(500_000, { dimensions: DIMENSIONS });
    const edit = (p: MemoryPoint, data: string) => ({ id: p.id, vector: p.vector, payload: { ...p.payload, data } });
    await served.upsert([added, edit(updated, 'edited after cutover'), edit(bothSides, 'edited in the new collection')]);
    await served.deletePoints([deleted.id]);
    await legacy.upsert([edit(bothSides, 'edited in legacy by a client on the bare name')]);

    await handle.signal(rollbackSignal, { by: 'alice' });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(result.carriedBack).toEqual({ added: 1, changed: 1, deleted: 1, conflicts: 1, conflictIds: [bothSides.id] });

    const expected = new Map([...before].map(([id, p]) => [id, p.payload]));
    expected.set(added.id, added.payload);
    expected.set(updated.id, edit(updated, 'edited after cutover').payload);
    expected.delete(deleted.id);
    expected.set(bothSides.id, edit(bothSides, 'edited in legacy by a client on the bare name').payload);
    await expectHolds(qdrant.url, `${base}_live`, expected);
    const [kept] = await new QdrantCollection(qdrant.url, `${base}_v2`).retrieve([bothSides.id]);
    expect(kept.payload.data).toBe('edited in the new collection');
    expect(result.notes.join('\n')).toContain(`legacy keeps its version, the new collections keep theirs for a person to reconcile: ${bothSides.id}`);
  });
});

describe('verification through the alias after the swap', () => {
  it('is not fooled by writes landing between its reads: a point added between its counts, a probed point changed between its reads', async () => {
    const base = await servedDataset(300);
    const [probed] = (await new QdrantCollection(qdrant.url, base).readPage(null, 10)).points; // the verify probe is the source's first page
    const newCollection = new QdrantCollection(qdrant.url, `${base}_v2`);
    const handle = await start(planFor(base));
    await waitForPhase(handle, 'await-approval');
    // On the double, each lands once, right after verify's first count or first read through the alias has been answered.
    const landed: string[] = [];
    qdrant.double?.faults.set({
      onlyPaths: new RegExp(`/collections/${base}_live/points(/count)?$`),
      afterHandling: async (path) => {
        const kind = path.endsWith('/count') ? 'add' : 'update';
        if (landed.includes(kind)) return;
        landed.push(kind);
        if (kind === 'add') await newCollection.upsert([mem0Memory(500_000, { dimensions: DIMENSIONS })]);
        else await newCollection.upsert([{ ...probed, payload: { ...probed.payload, data: 'edited by a client during verification' } }]);
      },
    });
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();
    qdrant.double?.faults.clear();
    expect(result.outcome, result.notes.join('\n')).toBe('cut-over');
    if (!qdrant.double) return; // a real Qdrant cannot time a write between two reads
    expect(landed).toEqual(['add', 'update']);
    expect(result.notes.join('\n')).toContain(`${base}_live → ${base}_v2: 300 points, 9 sampled equal (1 more written by clients while read, not judged), bm25 query answered`);
  });

  it('rolls back when a probed point reads back damaged through the alias, and legacy keeps every point', async () => {
    const base = await servedDataset(300);
    const before = await readAll(base);
    const [probed] = (await new QdrantCollection(qdrant.url, base).readPage(null, 10)).points;
    const handle = await start(planFor(base));
    await waitForPhase(handle, 'await-approval');
    const newCollection = new QdrantCollection(qdrant.url, `${base}_v2`);
    const [copy] = await newCollection.retrieve([probed.id]);
    await newCollection.upsert([{ ...copy, vector: copy.vector.map((x) => -x) }]); // damage no catch-up repairs: the source did not change
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(result.notes.join('\n')).toContain(`Rolled back (verification failed: Reading through '${base}_live' differs from the source: ${probed.id}: embedding mismatch`);
    expect(await aliasTarget(`${base}_live`)).toBe(base);
    await expectHolds(qdrant.url, base, new Map([...before].map(([id, p]) => [id, p.payload])));
  });
});
