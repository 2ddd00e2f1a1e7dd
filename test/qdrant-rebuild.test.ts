/**
 * qdrantCollectionRebuild end to end on a real Temporal server with a real
 * worker, mem0-shaped collections in Qdrant (the test double, or QDRANT_URL)
 * and a real Neo4j for the graph export.
 */
import type { Client } from '@temporalio/client';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bm25SparseVector } from '../activities/bm25';
import { sameJson } from '../activities/compare';
import type { MemoryPoint, SparseVector } from '../activities/stores/contract';
import { graphCounts, manifestPathFor, openNeo4jDriver } from '../activities/stores/neo4j';
import { QdrantCollection, listAliases, listCollections, listSnapshots } from '../activities/stores/qdrant';
import { generateMem0Collections, mem0Memory } from '../scripts/generate-mem0-collection';
import { approveUpdate, pauseSignal, rejectSignal, resumeSignal, rollbackSignal } from '../workflows/messages';
import { qdrantCollectionRebuild, type QdrantRebuildPlanInput } from '../workflows/qdrant-collection-rebuild';
import { connectClient, failureMessage, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { startTestNeo4j, type TestNeo4j } from './support/neo4j';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 1_500;
const DIMENSIONS = 64;
const ENTITIES_PER_USER = 20;

let client: Client;
let worker: { stop(): Promise<void> };
let qdrant: TestQdrant;
let neo4j: TestNeo4j;
const taskQueue = uniqueQueue('qdrant-rebuild');
const workDir = tempDir();

beforeAll(async () => {
  [client, qdrant, neo4j] = await Promise.all([connectClient(), startTestQdrant(), startTestNeo4j()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await qdrant?.stop();
  await neo4j?.stop();
});

/** A fresh mem0 dataset under a unique name: `<base>` and `<base>_entities`. */
async function mem0Dataset(count = MEMORIES, entitiesPerUser = ENTITIES_PER_USER): Promise<string> {
  const base = uniqueName('mem0');
  await generateMem0Collections(qdrant.url, { collection: base, count, dimensions: DIMENSIONS, entitiesPerUser });
  return base;
}

function planFor(base: string, overrides: Partial<QdrantRebuildPlanInput> = {}, withEntities = true): QdrantRebuildPlanInput {
  const pairs = [{ source: base, target: `${base}_v2`, alias: `${base}_live` }];
  if (withEntities) pairs.push({ source: `${base}_entities`, target: `${base}_v2_entities`, alias: `${base}_live_entities` });
  return {
    qdrant: { url: qdrant.url },
    collections: pairs,
    workDir,
    copy: { batchSize: 200, concurrency: 2 },
    approval: { approvers: ['alice'] },
    retention: '1s',
    ...overrides,
  };
}

const start = (plan: QdrantRebuildPlanInput) =>
  client.workflow.start(qdrantCollectionRebuild, { taskQueue, workflowId: uniqueName('rebuild'), args: [plan] });

async function readAll(collection: string): Promise<Map<string, MemoryPoint>> {
  const store = new QdrantCollection(qdrant.url, collection);
  const points = new Map<string, MemoryPoint>();
  let cursor: string | null = null;
  do {
    const page = await store.readPage(cursor, 1000);
    page.points.forEach((p) => points.set(p.id, p));
    cursor = page.next;
  } while (cursor !== null);
  return points;
}

async function aliasTarget(alias: string): Promise<string | undefined> {
  return (await listAliases(qdrant.url)).find((b) => b.alias === alias)?.collection;
}

/** Same ids, identical payloads, dense vectors equal to float32 precision, bm25 computed from `data`. */
function expectRebuilt(source: Map<string, MemoryPoint>, target: Map<string, MemoryPoint>): void {
  expect([...target.keys()].sort()).toEqual([...source.keys()].sort());
  for (const [id, point] of source) {
    const copy = target.get(id)!;
    expect(sameJson(copy.payload, point.payload), id).toBe(true); // floats within 1e-15: Qdrant re-serializes them
    expect(copy.vector.length).toBe(point.vector.length);
    copy.vector.forEach((x, i) => expect(Math.abs(x - point.vector[i])).toBeLessThan(1e-6));
    // Qdrant returns sparse indices sorted ascending (values permuted with them): compare index → value.
    expect(sparseEntries(copy.sparse?.bm25)).toEqual(sparseEntries(bm25SparseVector(point.payload.data as string)));
  }
}

/** The double just above `x`: what a store that re-serializes floats may hand back. */
function nextDouble(x: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + 1n);
  return view.getFloat64(0);
}

const sparseEntries = (v: SparseVector | undefined) => new Map(v?.indices.map((index, i) => [index, Math.fround(v.values[i])]));

function usersOf(points: Map<string, MemoryPoint>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of points.values()) {
    const user = String(p.payload.user_id ?? '(none)');
    counts[user] = (counts[user] ?? 0) + 1;
  }
  return counts;
}

async function cypher(query: string): Promise<void> {
  const driver = openNeo4jDriver(neo4j.uri);
  try {
    await driver.executeQuery(query);
  } finally {
    await driver.close();
  }
}

/** mem0 v1 graph memory: entities with user_id and embeddings, related by typed edges. */
async function seedGraph(): Promise<void> {
  await cypher('MATCH (n) DETACH DELETE n');
  await cypher(`UNWIND range(0, 59) AS i
    CREATE (:__Entity__ {name: 'entity-' + i, user_id: ['alice','bob'][i % 2], embedding: [x IN range(1, 8) | x * 0.125 * i], mentions: i})`);
  await cypher(`MATCH (a:__Entity__), (b:__Entity__) WHERE a.mentions + 1 = b.mentions
    CREATE (a)-[:RELATED_TO {since: date('2024-01-01'), weight: 0.5}]->(b)`);
}

describe('rebuild end to end', () => {
  it('rebuilds mem0 and mem0_entities: per-user counts, payloads, vectors, bm25, alias cutover, snapshots, graph export', async () => {
    await seedGraph();
    const graphBefore = await graphCounts({ uri: neo4j.uri });
    const base = await mem0Dataset();
    const sources = { memories: await readAll(base), entities: await readAll(`${base}_entities`) };
    const handle = await start(planFor(base, { graph: { uri: neo4j.uri } }));

    const waiting = await waitForPhase(handle, 'await-approval');
    const report = waiting.report!;
    expect(report.ok, JSON.stringify(report.checks)).toBe(true);
    expect(report.sourceCount).toBe(MEMORIES + 5 * ENTITIES_PER_USER);
    expect(report.targetCount).toBe(report.sourceCount);
    const alice = report.perUser.find((row) => row.user === `${base}/alice`)!;
    expect(alice).toEqual({ user: `${base}/alice`, source: usersOf(sources.memories).alice, target: usersOf(sources.memories).alice });
    expect(report.checks.find((c) => c.name === `${base}_v2: bm25 coverage`)?.detail).toMatch(/^(\d+)\/\1 points with text/);
    // Nothing is live before approval.
    expect(await aliasTarget(`${base}_live`)).toBeUndefined();

    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'counts match' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result.copied).toBe(MEMORIES + 5 * ENTITIES_PER_USER);

    expectRebuilt(sources.memories, await readAll(`${base}_v2`));
    expectRebuilt(sources.entities, await readAll(`${base}_v2_entities`));
    expect(usersOf(await readAll(`${base}_live`))).toEqual(usersOf(sources.memories));
    expect(await aliasTarget(`${base}_live`)).toBe(`${base}_v2`);
    expect(await aliasTarget(`${base}_live_entities`)).toBe(`${base}_v2_entities`);
    // The legacy collections are untouched, and snapshotted.
    expect(await readAll(base)).toEqual(sources.memories);
    expect((await listSnapshots(qdrant.url, base)).map((s) => s.name)).toContain(result.snapshots[0].name);

    // The decommission dump: a JSONL file with a manifest whose counts match the graph.
    const manifest = JSON.parse(readFileSync(manifestPathFor(result.graphExport!), 'utf8'));
    expect({ nodes: manifest.nodes, relationships: manifest.relationships }).toEqual(graphBefore);
    expect(graphBefore).toEqual({ nodes: 60, relationships: 59 });
  });

  it('catches up writes that land in the source during the copy and while approval is pending', async () => {
    const base = await mem0Dataset(3_000, 0);
    // Slow writes to the new collection (on the double) so the source changes while the copy runs.
    qdrant.double?.faults.set({ latencyMs: 100, onlyPaths: new RegExp(`${base}_v2/points$`) });
    const handle = await start(planFor(base, { copy: { batchSize: 100, concurrency: 1 } }, false));
    // Paused once the copy has written its first batch (read from Qdrant, not from progress reports):
    // the writes below land after the copy read those points and before the first catch-up.
    const written = new QdrantCollection(qdrant.url, `${base}_v2`);
    while ((await written.count().catch(() => 0)) < 100) await new Promise((resolve) => setTimeout(resolve, 50));
    await handle.signal(pauseSignal, { by: 'alice' });
    await waitForStatus(handle, (s) => s.paused);
    qdrant.double?.faults.clear();

    // mem0 keeps writing: new memories, updates and deletes of memories the copy already wrote.
    const source = new QdrantCollection(qdrant.url, base);
    const copied = [...(await readAll(`${base}_v2`)).values()].slice(0, 15);
    const updated = copied.slice(0, 10).map(({ sparse: _bm25, ...p }) => ({ ...p, payload: { ...p.payload, data: `${p.payload.data} (edited)`, updated_at: '2025-06-01T00:00:00+00:00' } }));
    await source.upsert(updated);
    await source.deletePoints(copied.slice(10).map((p) => p.id));
    await source.upsert(Array.from({ length: 40 }, (_, i) => mem0Memory(10_000 + i, { dimensions: DIMENSIONS })));
    // A store that re-serializes floats: copied points whose float came back as the neighbouring double
    // are equal within tolerance, so the catch-up must not count (or re-copy) them as changed.
    const reserialized = [...(await readAll(`${base}_v2`)).values()].slice(15).filter((p) => typeof p.payload.last_seen_epoch === 'number');
    await written.upsert(reserialized.map((p) => ({ ...p, payload: { ...p.payload, last_seen_epoch: nextDouble(p.payload.last_seen_epoch as number) } })));
    expect(reserialized.length).toBeGreaterThan(5);
    await handle.signal(resumeSignal, { by: 'alice' });

    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report?.ok, JSON.stringify(waiting.report?.checks)).toBe(true);
    expect(waiting.report?.sourceCount).toBe(3_000 + 40 - 5);
    const late = mem0Memory(20_000, { dimensions: DIMENSIONS });
    await source.upsert([late]); // lands while the approver reads the report
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();

    expect(result.outcome).toBe('cut-over');
    expect(result.caughtUp.changed).toBe(10);
    expect(result.caughtUp.deleted).toBe(5);
    expect(result.caughtUp.added).toBeGreaterThan(0); // new ids sorting before the paused cursor
    expect(result.report?.checks.find((c) => c.name === 'catch-up')?.detail).toMatch(/\d+ added, 10 changed, 5 deleted/);
    expect(result.notes.join('\n')).toMatch(/Final catch-up before the alias swap: 1 added, 0 changed, 0 deleted/);
    expectRebuilt(await readAll(base), await readAll(`${base}_live`));
  });
});

describe('approval and rollback', () => {
  it('reject: no alias, the new collections dropped, the source untouched', async () => {
    const base = await mem0Dataset(300, 0);
    const before = await readAll(base);
    const handle = await start(planFor(base, {}, false));
    await waitForPhase(handle, 'await-approval');
    await handle.signal(rejectSignal, { by: 'alice', reason: 'not tonight' });
    const result = await handle.result();
    expect(result.outcome).toBe('rejected');
    expect(await listCollections(qdrant.url)).not.toContain(`${base}_v2`);
    expect(await aliasTarget(`${base}_live`)).toBeUndefined();
    expect(await readAll(base)).toEqual(before);
  });

  it('approval timeout: ends without cutover, keeps the new collection when the plan says so', async () => {
    const base = await mem0Dataset(300, 0);
    const handle = await start(planFor(base, { approval: { approvers: ['alice'], timeout: '2s' }, onReject: 'keep-target' }, false));
    const result = await handle.result();
    expect(result.outcome).toBe('approval-timed-out');
    expect(await aliasTarget(`${base}_live`)).toBeUndefined();
    expect((await readAll(`${base}_v2`)).size).toBe(300);
  });

  it('rollback after cutover: alias back on the legacy collection, which is intact; Neo4j export restored into an empty database', async () => {
    await seedGraph();
    const graphBefore = await graphCounts({ uri: neo4j.uri });
    const base = await mem0Dataset(400);
    const before = await readAll(base);
    const handle = await start(planFor(base, { graph: { uri: neo4j.uri }, retention: '1h', rollback: { restoreGraph: true } }));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'rollback-window');
    expect(await aliasTarget(`${base}_live`)).toBe(`${base}_v2`);

    await cypher('MATCH (n) DETACH DELETE n'); // Neo4j decommissioned; an empty one stands in its place
    expect(await graphCounts({ uri: neo4j.uri })).toEqual({ nodes: 0, relationships: 0 });
    await handle.signal(rollbackSignal, { by: 'alice', reason: 'hybrid search regressed' });
    const result = await handle.result();

    expect(result.outcome).toBe('rolled-back');
    expect(await aliasTarget(`${base}_live`)).toBe(base);
    expect(await aliasTarget(`${base}_live_entities`)).toBe(`${base}_entities`);
    expect(await readAll(`${base}_live`)).toEqual(before);
    expect(await graphCounts({ uri: neo4j.uri })).toEqual(graphBefore);
    expect(existsSync(result.graphExport!)).toBe(true);
  });
});

describe('rollback from the snapshot', () => {
  it('is refused while it would undo writes made since the snapshot, naming them; with acceptLoss it serves the snapshot and the legacy collection keeps them', async () => {
    const base = await mem0Dataset(200, 0);
    const snapshotTime = await readAll(base);
    const handle = await start(planFor(base, { retention: '1h', rollback: { fromSnapshot: true } }, false));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'rollback-window');
    // The service writes through the alias after cutover: the snapshot, taken before the copy, lacks it.
    const written = mem0Memory(90_001, { dimensions: DIMENSIONS });
    await new QdrantCollection(qdrant.url, `${base}_v2`).upsert([written]);

    await handle.signal(rollbackSignal, { by: 'alice', reason: 'hybrid search regressed' });
    const refused = await waitForStatus(handle, (s) => s.notes.some((n) => n.startsWith('Rollback requested by alice failed')));
    expect(refused.notes.join('\n')).toMatch(new RegExp(`Serving the snapshot of '${base}' would undo 1 writes made since it was taken \\(${written.id}\\); no alias was moved`));
    expect(await aliasTarget(`${base}_live`)).toBe(`${base}_v2`);

    await handle.signal(rollbackSignal, { by: 'alice', reason: 'accepted', acceptLoss: true });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(result.notes.join('\n')).toMatch(new RegExp(`the snapshot of '${base}' served as accepted, undoing 1 writes that '${base}' keeps`));
    expect(await aliasTarget(`${base}_live`)).toBe(`${base}_rollback`);
    expect(await readAll(`${base}_live`)).toEqual(snapshotTime);
    expect((await readAll(base)).get(written.id)?.payload).toEqual(written.payload); // carried back: the legacy collection keeps it
  });
});

describe('bad input: a clear error and nothing written', () => {
  /** Everything a failed start could have written: collections, aliases, snapshots of the source. */
  async function qdrantState(base: string) {
    return {
      collections: (await listCollections(qdrant.url)).sort(),
      aliases: await listAliases(qdrant.url),
      snapshots: (await listCollections(qdrant.url)).includes(base) ? await listSnapshots(qdrant.url, base) : [],
    };
  }

  async function expectRefused(base: string, plan: QdrantRebuildPlanInput, message: RegExp) {
    const before = await qdrantState(base);
    const handle = await start(plan);
    expect(await failureMessage(handle)).toMatch(message);
    expect(await qdrantState(base)).toEqual(before);
  }

  it('missing source collection', async () => {
    const base = uniqueName('absent');
    await expectRefused(base, planFor(base, {}, false), new RegExp(`Source collection '${base}' does not exist at .*Check collections\\[\\]\\.source`));
  });

  it('target already holding other data', async () => {
    const base = await mem0Dataset(50, 0);
    await generateMem0Collections(qdrant.url, { collection: `${base}_v2`, count: 7, dimensions: DIMENSIONS, entitiesPerUser: 0 });
    await expectRefused(base, planFor(base, {}, false), new RegExp(`Target collection '${base}_v2' already holds 7 points; nothing was written`));
  });

  it('alias name taken by a collection', async () => {
    const base = await mem0Dataset(50, 0);
    await generateMem0Collections(qdrant.url, { collection: `${base}_live`, count: 1, dimensions: DIMENSIONS, entitiesPerUser: 0 });
    await expectRefused(base, planFor(base, {}, false), new RegExp(`serving name '${base}_live' is a collection, not an alias`));
  });

  it('vector config mismatch on a plan override', async () => {
    const base = await mem0Dataset(50, 0);
    await expectRefused(
      base,
      planFor(base, { schema: { dense: { size: 1536, distance: 'Cosine' } } }, false),
      new RegExp(`Vector config mismatch on '${base}': the plan's schema.dense asks for size 1536 \\(source has ${DIMENSIONS}\\)`),
    );
  });

  it('a plan naming one collection twice fails validation before anything runs', async () => {
    const base = await mem0Dataset(10, 0);
    const plan = planFor(base, {}, false);
    plan.collections[0].alias = base;
    await expectRefused(base, plan, /Invalid plan — fix these fields: collections\.0\.alias: '.*' is already used as collections\[0\]\.source/);
  });
});
