/**
 * The Qdrant adapter's contract, run through every REST call memshift makes:
 * against the in-memory double by default, against a real Qdrant when
 * QDRANT_URL is set (with unique collection names, removed afterwards).
 * Fault injection, raw wire shapes and the standalone mode need the double and
 * always run against it.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MemoryPoint } from '../activities/stores/contract';
import {
  collectionExists,
  createCollection,
  createPayloadIndex,
  createSnapshot,
  deleteCollection,
  describeCollection,
  listAliases,
  listCollections,
  listSnapshots,
  QdrantCollection,
  QdrantError,
  recoverSnapshot,
  serverVersion,
  snapshotLocation,
  updateAliases,
} from '../activities/stores/qdrant';
import { qdrantParsedFloat, qdrantParsedJson } from './qdrant-double/floats';
import { CORRUPTED_PAYLOAD_VALUE } from './qdrant-double/faults';
import { startQdrantDouble, type QdrantDouble } from './qdrant-double/server';

const REAL_QDRANT_URL = process.env.QDRANT_URL;

function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

/** Deterministic unit vectors, so cosine collections (which normalise) store them unchanged. */
function unitVector(dimensions: number, seed: number): number[] {
  const raw = Array.from({ length: dimensions }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) + 1.5);
  const norm = Math.hypot(...raw);
  return raw.map((x) => x / norm);
}

function memory(seed: number, overrides: Partial<MemoryPoint> = {}): MemoryPoint {
  return {
    id: randomUUID(),
    vector: unitVector(4, seed),
    payload: {
      data: `memory ${seed}`,
      user_id: seed % 3 === 0 ? 'alice' : 'bob',
      created_at: new Date(Date.UTC(2024, 0, 1 + seed)).toISOString(),
      metadata: { tags: ['a', `t${seed}`], score: seed / 10 },
    },
    ...overrides,
  };
}

/** Qdrant's point order for uuids: bytewise, i.e. lowercase hex string order. */
function byQdrantOrder(ids: string[]): string[] {
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Every point by cursor; fails instead of looping when a cursor does not move forward. */
async function readAll(source: QdrantCollection, limit: number): Promise<MemoryPoint[]> {
  const points: MemoryPoint[] = [];
  const seenCursors = new Set<string>();
  let cursor: string | null = null;
  do {
    const page = await source.readPage(cursor, limit);
    expect(page.points.length).toBeLessThanOrEqual(limit);
    points.push(...page.points);
    cursor = page.next;
    if (cursor !== null) {
      expect(seenCursors.has(cursor), `cursor ${cursor} came back twice`).toBe(false);
      seenCursors.add(cursor);
    }
  } while (cursor !== null);
  return points;
}

/** Qdrant stores float32, so vectors come back equal to about six digits. */
function expectSameVector(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));
}

function expectSamePoints(actual: MemoryPoint[], expected: MemoryPoint[]): void {
  const byId = new Map(actual.map((point) => [point.id, point]));
  expect(byId.size).toBe(actual.length);
  expect([...byId.keys()].sort()).toEqual(expected.map((point) => point.id).sort());
  for (const point of expected) {
    const got = byId.get(point.id)!;
    expect(got.payload).toEqual(point.payload);
    expectSameVector(got.vector, point.vector);
    expect(got.sparse).toEqual(point.sparse);
  }
}

/** A query that returns vectors, which the adapter's nearest() does not ask for. */
async function queryWithVectors(url: string, collection: string, body: Record<string, unknown>): Promise<{ id: string; vector: any }[]> {
  const apiKey = process.env.QDRANT_API_KEY;
  const response = await fetch(`${url}/collections/${collection}/points/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(apiKey ? { 'api-key': apiKey } : {}) },
    body: JSON.stringify({ ...body, with_vector: true }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { result: { points: { id: string; vector: any }[] } }).result.points;
}

async function rejection(promise: Promise<unknown>): Promise<QdrantError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(QdrantError);
  return error as QdrantError;
}

describe(`Qdrant adapter contract (${REAL_QDRANT_URL ? `real Qdrant at ${REAL_QDRANT_URL}` : 'test double'})`, () => {
  let url: string;
  let double: QdrantDouble | undefined;
  const created: string[] = [];

  /** A collection (or alias) name for this run; collections are deleted after the suite. */
  const fresh = (prefix: string) => {
    const name = uniqueName(prefix);
    created.push(name);
    return name;
  };

  beforeAll(async () => {
    if (REAL_QDRANT_URL) {
      url = REAL_QDRANT_URL;
    } else {
      double = await startQdrantDouble();
      url = double.url;
    }
  });

  afterAll(async () => {
    for (const name of created) await deleteCollection(url, name).catch(() => undefined);
    await double?.stop();
  });

  it('reports the server version and lists collections', async () => {
    expect(await serverVersion(url)).toMatch(/^\d+\.\d+/);
    const name = fresh('listed');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    expect(await listCollections(url)).toContain(name);
  });

  it('creates, describes and deletes a mem0-style collection (unnamed dense + bm25 with idf)', async () => {
    const name = fresh('mem0');
    await createCollection(url, name, { size: 4, distance: 'Cosine', sparse: ['bm25'], sparseModifier: 'idf' });
    expect(await collectionExists(url, name)).toBe(true);
    expect(await describeCollection(url, name)).toEqual({
      dense: [{ name: null, size: 4, distance: 'Cosine' }],
      sparse: [{ name: 'bm25', modifier: 'idf' }],
      pointsCount: 0,
      payloadIndexes: {},
    });

    const again = await rejection(createCollection(url, name, { size: 4, distance: 'Cosine' }));
    expect(again.status).toBe(409);
    expect(again.message).toContain('already exists');

    expect(await deleteCollection(url, name)).toBe(true);
    expect(await collectionExists(url, name)).toBe(false);
    expect(await deleteCollection(url, name)).toBe(false);
  });

  it('says which collection is missing, without retrying', async () => {
    const name = uniqueName('missing');
    const error = await rejection(describeCollection(url, name));
    expect(error.message).toBe(`Qdrant collection '${name}' does not exist at ${url}`);
    expect(error.status).toBe(404);
    expect(error.retryable).toBe(false);
    await expect(new QdrantCollection(url, name).readPage(null, 10)).rejects.toThrow(`Qdrant collection '${name}' does not exist`);
  });

  it('describe() / create() / drop() give the copy engine what it needs for a target', async () => {
    const target = new QdrantCollection(url, fresh('target'));
    expect(await target.describe()).toEqual({ exists: false, dimensions: null, points: 0 });
    await target.create(4);
    await target.upsert([memory(1), memory(2)]);
    expect(await target.describe()).toEqual({ exists: true, dimensions: 4, points: 2 });
    await target.drop();
    expect(await target.describe()).toEqual({ exists: false, dimensions: null, points: 0 });
  });

  it('round-trips points (payload, dense and sparse vectors) and reads them in id order by cursor', async () => {
    const name = fresh('points');
    await createCollection(url, name, { size: 4, distance: 'Cosine', sparse: ['bm25'], sparseModifier: 'idf' });
    const store = new QdrantCollection(url, name);
    const points = Array.from({ length: 23 }, (_, i) =>
      memory(i, i % 2 === 0 ? { sparse: { bm25: { indices: [i, i + 100], values: [1, 0.5] } } } : {}),
    );
    await store.upsert(points);

    expect(await store.count()).toBe(23);
    const read = await readAll(store, 5);
    expect(read.map((point) => point.id)).toEqual(byQdrantOrder(points.map((point) => point.id)));
    expectSamePoints(read, points);
  });

  it('returns payload floats as Qdrant 1.19 parses them: 17-digit floats may move an ulp, integers and short decimals stay exact', async () => {
    const name = fresh('floats');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    const moving = {
      // Seen from a real Qdrant 1.19.0: each comes back as the neighbouring double.
      created_at: 1700000000.8524659,
      updated_at: 1700000043.4886215,
      negative: -1700000000.8524659,
      small_exponent: 5.101457361733839e-8,
      large_exponent: 2.0669143172686367e21,
      // Short, but 1e29 is not exact in binary: the division by it rounds a second time.
      tiny_short: 1.665e-26,
      // Below serde's 1e308 table: divided by 1e308 first, then by the rest.
      subnormal: 1.716e-310,
    };
    // REAL seconds with sub-millisecond fractions, as mcp-memory-service writes them.
    const timestamps = Array.from({ length: 60 }, (_, i) => 1700000000 + i * 86400.12345678 + i / 7);
    const exact = {
      integers: [0, 42, -7, 1700000000, 2 ** 53 + 2, -(2 ** 62)],
      short_decimals: [0.1, 0.5, 19.99, -2.25, 1700000000.5, 1700000000.123, 1e-7, 1.5e21],
    };
    const sent = memory(1, { payload: { ...moving, metadata: { timestamps, nested: { exact } } } });
    await store.upsert([sent]);

    const [retrieved] = await store.retrieve([sent.id]);
    const [scrolled] = (await store.readPage(null, 10)).points;
    for (const payload of [retrieved.payload, scrolled.payload]) {
      expect(payload).toEqual(qdrantParsedJson(sent.payload));
      expect(payload.created_at).toBe(1700000000.852466);
      expect(payload.updated_at).toBe(1700000043.4886217);
      for (const [field, value] of Object.entries(moving)) expect(payload[field], field).not.toBe(value);
      expect((payload.metadata as any).nested.exact).toEqual(exact);
    }
    // Guards the case itself: some generated timestamps need the emulation, some do not.
    const changed = timestamps.filter((t) => qdrantParsedFloat(t) !== t).length;
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThan(timestamps.length);
  });

  it('returns sparse vectors with indices sorted ascending, values moved along (retrieve, scroll, query)', async () => {
    const name = fresh('sparse_order');
    await createCollection(url, name, { size: 4, distance: 'Cosine', sparse: ['bm25'], sparseModifier: 'idf' });
    const store = new QdrantCollection(url, name);
    // Values exact in float32, so only their order can differ.
    const sent = memory(1, { sparse: { bm25: { indices: [42, 7, 1000, 3], values: [0.5, 0.25, 1, 0.125] } } });
    await store.upsert([sent]);
    const sorted = { indices: [3, 7, 42, 1000], values: [0.125, 0.25, 0.5, 1] };

    expect((await store.retrieve([sent.id]))[0].sparse).toEqual({ bm25: sorted });
    expect((await store.readPage(null, 10)).points[0].sparse).toEqual({ bm25: sorted });
    const hits = await queryWithVectors(url, name, { query: { indices: [7], values: [1] }, using: 'bm25', limit: 10 });
    expect(hits.map((hit) => hit.vector.bm25)).toEqual([sorted]);
  });

  it('upsert is idempotent and replaces payloads', async () => {
    const name = fresh('idempotent');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    const points = Array.from({ length: 6 }, (_, i) => memory(i));
    await store.upsert(points);
    const changed = points.map((point) => ({ ...point, payload: { ...point.payload, data: 'changed' } }));
    await store.upsert(changed);
    await store.upsert(changed);
    expect(await store.count()).toBe(6);
    expectSamePoints(await readAll(store, 4), changed);
  });

  it('retrieves by id, leaving out ids that are absent; deletes by id', async () => {
    const name = fresh('retrieve');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    const points = Array.from({ length: 5 }, (_, i) => memory(i));
    await store.upsert(points);

    const absent = randomUUID();
    expectSamePoints(await store.retrieve([points[0].id, absent, points[3].id]), [points[0], points[3]]);
    expect(await store.retrieve([])).toEqual([]);

    await store.deletePoints([points[0].id, absent]);
    expect(await store.count()).toBe(4);
    expect(await store.retrieve([points[0].id])).toEqual([]);
  });

  it('counts per payload value exactly (per-user parity)', async () => {
    const name = fresh('per_user');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    await store.upsert(Array.from({ length: 10 }, (_, i) => memory(i)));
    // seeds 0, 3, 6, 9 are alice's
    expect(await store.countsMatching('user_id', ['alice', 'bob', 'nobody'])).toEqual(new Map([['alice', 4], ['bob', 6], ['nobody', 0]]));
  });

  it('rejects a vector of the wrong size with Qdrant’s reason', async () => {
    const name = fresh('dims');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const error = await rejection(new QdrantCollection(url, name).upsert([memory(1, { vector: [0.1, 0.2, 0.3] })]));
    expect(error.status).toBe(400);
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('Vector dimension error: expected dim: 4, got 3');
  });

  it('resumes a scroll from its cursor without skipping or repeating, even after inserts', async () => {
    const name = fresh('resume');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    const original = Array.from({ length: 30 }, (_, i) => memory(i));
    await store.upsert(original);

    const first = await store.readPage(null, 10);
    const cursor = first.next!;
    expect(cursor).not.toBeNull();
    const inserted = Array.from({ length: 12 }, (_, i) => memory(100 + i));
    await store.upsert(inserted);

    const rest: MemoryPoint[] = [];
    for (let next: string | null = cursor; next !== null && rest.length <= 42; ) {
      const page = await store.readPage(next, 7);
      rest.push(...page.points);
      next = page.next;
    }
    const ids = [...first.points, ...rest].map((point) => point.id);
    expect(ids).toEqual(byQdrantOrder(ids));
    expect(new Set(ids).size).toBe(ids.length);
    for (const point of original) expect(ids).toContain(point.id);
    const cursorId = JSON.parse(cursor) as string;
    for (const point of inserted.filter((p) => p.id >= cursorId)) expect(ids).toContain(point.id);
  });

  it('prints uuids canonically (lowercase) and orders integer ids numerically before uuids', async () => {
    const name = fresh('ids');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    const upper = randomUUID().toUpperCase();
    await store.upsert([memory(1, { id: upper }), memory(2, { id: '10' }), memory(3, { id: '9' }), memory(4, { id: '100' })]);

    const pages: string[][] = [];
    for (let cursor: string | null = null, first = true; (first || cursor !== null) && pages.length < 5; first = false) {
      const page = await store.readPage(cursor, 2);
      pages.push(page.points.map((point) => point.id));
      cursor = page.next;
    }
    expect(pages).toEqual([['9', '10'], ['100', upper.toLowerCase()]]);
    expect((await store.retrieve(['10']))[0].payload.data).toBe('memory 2');
  });

  it('reads and writes a named dense vector when told its name', async () => {
    const store = new QdrantCollection(url, fresh('named'), { vectorName: 'text', distance: 'Dot' });
    await store.create(3);
    expect((await describeCollection(url, store.collection)).dense).toEqual([{ name: 'text', size: 3, distance: 'Dot' }]);
    const point = memory(1, { vector: [0.5, -2, 3] });
    await store.upsert([point]);
    expect(await store.describe()).toEqual({ exists: true, dimensions: 3, points: 1 });
    expectSamePoints(await readAll(store, 10), [point]);
  });

  it('queries nearest points by dense vector with the collection’s distance', async () => {
    const name = fresh('dense_query');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    const store = new QdrantCollection(url, name);
    const [x, y, xy] = [memory(1, { vector: [1, 0, 0, 0] }), memory(2, { vector: [0, 1, 0, 0] }), memory(3, { vector: [1, 1, 0, 0] })];
    await store.upsert([x, y, xy]);
    const hits = await store.nearest({ dense: [2, 0, 0, 0] }, 3);
    expect(hits.map((hit) => hit.id)).toEqual([x.id, xy.id, y.id]);
    expect(hits[0].score).toBeCloseTo(1, 5);
    expect(hits[1].score).toBeCloseTo(Math.SQRT1_2, 5);
    expect(hits[2].score).toBeCloseTo(0, 5);
    expect(await store.nearest({ dense: [2, 0, 0, 0] }, 1)).toHaveLength(1);
  });

  it('queries a sparse vector: only points sharing a term, best first', async () => {
    const name = fresh('sparse_query');
    await createCollection(url, name, { size: 4, distance: 'Cosine', sparse: ['bm25'], sparseModifier: 'idf' });
    const store = new QdrantCollection(url, name);
    const both = memory(1, { sparse: { bm25: { indices: [1, 2], values: [1, 1] } } });
    const one = memory(2, { sparse: { bm25: { indices: [2], values: [1] } } });
    const other = memory(3, { sparse: { bm25: { indices: [3], values: [1] } } });
    await store.upsert([both, one, other]);

    const hits = await store.nearest({ sparse: { indices: [1, 2], values: [1, 1] }, using: 'bm25' }, 10);
    expect(hits.map((hit) => hit.id)).toEqual([both.id, one.id]);
    expect(hits[0].score).toBeGreaterThan(hits[1].score);
    expect(hits[1].score).toBeGreaterThan(0);
  });

  it('creates keyword payload indexes that show in the collection’s description', async () => {
    const name = fresh('indexed');
    await createCollection(url, name, { size: 4, distance: 'Cosine' });
    await createPayloadIndex(url, name, 'user_id', 'keyword');
    await createPayloadIndex(url, name, 'user_id', 'keyword'); // repeating it is harmless
    await createPayloadIndex(url, name, 'created_at', 'datetime');
    expect((await describeCollection(url, name)).payloadIndexes).toEqual({ user_id: 'keyword', created_at: 'datetime' });
  });

  it('swaps an alias atomically; reads through an alias; never deletes through one', async () => {
    const [v1, v2, alias, renamed] = [fresh('v1'), fresh('v2'), fresh('alias'), fresh('renamed')];
    await createCollection(url, v1, { size: 4, distance: 'Cosine' });
    await createCollection(url, v2, { size: 4, distance: 'Cosine' });
    await new QdrantCollection(url, v1).upsert([memory(1)]);
    await new QdrantCollection(url, v2).upsert([memory(2), memory(3)]);
    const viaAlias = new QdrantCollection(url, alias);

    await updateAliases(url, [{ op: 'create', alias, collection: v1 }]);
    expect(await listAliases(url, v1)).toEqual([{ alias, collection: v1 }]);
    expect(await viaAlias.count()).toBe(1);
    expect(await collectionExists(url, alias)).toBe(true);

    await updateAliases(url, [
      { op: 'delete', alias },
      { op: 'create', alias, collection: v2 },
    ]);
    expect(await listAliases(url)).toContainEqual({ alias, collection: v2 });
    expect(await listAliases(url, v1)).toEqual([]);
    expect(await viaAlias.count()).toBe(2);
    expect((await describeCollection(url, alias)).pointsCount).toBe(2);

    await updateAliases(url, [{ op: 'rename', from: alias, to: renamed }]);
    expect(await listAliases(url, v2)).toEqual([{ alias: renamed, collection: v2 }]);

    expect(await deleteCollection(url, renamed)).toBe(false);
    expect(await collectionExists(url, v2)).toBe(true);
    await deleteCollection(url, v2);
    expect((await listAliases(url)).filter((binding) => binding.alias === renamed)).toEqual([]);
  });

  it('refuses an alias for a collection that does not exist', async () => {
    const error = await rejection(updateAliases(url, [{ op: 'create', alias: fresh('dangling'), collection: uniqueName('nothing') }]));
    expect(error.status).toBe(404);
  });

  it('snapshots a collection and recovers it, without touching aliases', async () => {
    const [name, alias, restored] = [fresh('snap'), fresh('snap_alias'), fresh('restored')];
    await createCollection(url, name, { size: 4, distance: 'Cosine', sparse: ['bm25'], sparseModifier: 'idf' });
    const store = new QdrantCollection(url, name);
    const points = Array.from({ length: 8 }, (_, i) => memory(i, { sparse: { bm25: { indices: [i], values: [1] } } }));
    await store.upsert(points);
    await updateAliases(url, [{ op: 'create', alias, collection: name }]);

    const snapshot = await createSnapshot(url, name);
    expect(snapshot.name).toMatch(/\.snapshot$/);
    expect(snapshot.size).toBeGreaterThan(0);
    expect((await listSnapshots(url, name)).map((s) => s.name)).toContain(snapshot.name);

    // Writes after the snapshot are undone by recovering it.
    await store.deletePoints([points[0].id, points[1].id]);
    await store.upsert([memory(50)]);
    await recoverSnapshot(url, name, snapshotLocation(url, name, snapshot.name), snapshot.checksum ?? undefined);
    expectSamePoints(await readAll(store, 3), points);
    expect(await listAliases(url, name)).toEqual([{ alias, collection: name }]);

    // Into another name: same content and config, and no aliases come with it.
    await recoverSnapshot(url, restored, snapshotLocation(url, name, snapshot.name));
    expectSamePoints(await readAll(new QdrantCollection(url, restored), 5), points);
    expect((await describeCollection(url, restored)).sparse).toEqual([{ name: 'bm25', modifier: 'idf' }]);
    expect(await listAliases(url, restored)).toEqual([]);
  });
});

describe('qdrantParsedFloat: serde_json without float_roundtrip, as Qdrant 1.19 parses payload numbers', () => {
  it('reproduces what a real Qdrant 1.19.0 returned', () => {
    expect(qdrantParsedFloat(1700000000.8524659)).toBe(1700000000.852466);
    expect(qdrantParsedFloat(1700000043.4886215)).toBe(1700000043.4886217);
    expect(qdrantParsedFloat(-1700000043.4886215)).toBe(-1700000043.4886217);
  });

  it('keeps integers within u64 and short decimals with small exponents exact', () => {
    for (const x of [0, -0, 42, -7, 2 ** 53 + 2, -(2 ** 63), 18446744073709549568, 0.1, 19.99, -2.25, 1e-7, 1.5e21, 5e-324, Number.MAX_VALUE]) {
      expect(Object.is(qdrantParsedFloat(x), x), String(x)).toBe(true);
    }
  });

  it('rounds the digits to a double, then scales by the correctly rounded 1eN of serde’s table', () => {
    // 17 digits need more than 53 bits: two roundings.
    expect(qdrantParsedFloat(5.101457361733839e-8)).toBe(Number(5101457361733839n) / 1e23);
    expect(qdrantParsedFloat(2.0669143172686367e21)).toBe(Number(20669143172686367n) * 1e5);
    // Short, but 1e29 is inexact; V8's 10 ** 29 is a different double, which would give 1.665e-26 back.
    expect(qdrantParsedFloat(1.665e-26)).toBe(1665 / 1e29);
    expect(qdrantParsedFloat(1.665e-26)).not.toBe(1.665e-26);
  });

  it('past the 1e308 table, divides by 1e308 first and then by the rest', () => {
    expect(qdrantParsedFloat(1.716e-310)).toBe(1716 / 1e308 / 1e5);
    expect(qdrantParsedFloat(1.716e-310)).not.toBe(1.716e-310);
  });

  it('an integer beyond u64 keeps its first digits that fit and counts the rest in the exponent', () => {
    // "98765432109876540000": the 20th digit would overflow u64, so it is dropped and the exponent becomes 1.
    expect(qdrantParsedFloat(98765432109876540000)).toBe(Number(9876543210987654000n) * 10);
    expect(qdrantParsedFloat(98765432109876540000)).not.toBe(98765432109876540000);
  });

  it('applies to every number of a payload, nested in objects and arrays, and leaves the rest alone', () => {
    const payload = { a: 1700000000.8524659, b: [1, { c: 1700000043.4886215 }], d: 'text', e: null, f: true };
    expect(qdrantParsedJson(payload)).toEqual({ a: 1700000000.852466, b: [1, { c: 1700000043.4886217 }], d: 'text', e: null, f: true });
  });
});

describe('Qdrant test double: faults, wire shapes, standalone', () => {
  let double: QdrantDouble;
  let collection: string;
  let store: QdrantCollection;

  beforeAll(async () => {
    double = await startQdrantDouble();
  });

  afterAll(async () => {
    await double.stop();
  });

  beforeEach(async () => {
    double.faults.clear();
    collection = uniqueName('faults');
    await createCollection(double.url, collection, { size: 4, distance: 'Cosine' });
    store = new QdrantCollection(double.url, collection);
    double.stats.reset();
  });

  afterEach(() => double.faults.clear());

  const route = (key: string) => double.stats.route(key);
  const UPSERT = 'PUT /collections/{name}/points';
  const SCROLL = 'POST /collections/{name}/points/scroll';

  async function upsertInBatches(points: MemoryPoint[], batchSize: number): Promise<void> {
    for (let i = 0; i < points.length; i += batchSize) await store.upsert(points.slice(i, i + batchSize));
  }

  it('with 503s injected, a sequence of upserts and a full scroll still give exact results', async () => {
    const points = Array.from({ length: 200 }, (_, i) => memory(i));
    double.faults.set({ fail503: 2, failEvery: 4 });
    await upsertInBatches(points, 25);
    const read = await readAll(store, 30);
    const count = await store.count();
    double.faults.clear();

    expect(count).toBe(200);
    expect(read.map((point) => point.id)).toEqual(byQdrantOrder(points.map((point) => point.id)));
    expectSamePoints(read, points);
    expect(route(UPSERT).injected503).toBeGreaterThanOrEqual(2);
    expect(route(SCROLL).injected503).toBeGreaterThanOrEqual(1);
    expect(route(UPSERT).requests).toBe(8 + route(UPSERT).injected503);
  });

  it('with dropped connections (lost requests and lost acknowledgements), results stay exact', async () => {
    const points = Array.from({ length: 120 }, (_, i) => memory(i));
    // The upserts take effect but their answers are lost: the retries must not duplicate anything.
    double.faults.set({ dropConnections: 3, dropAfterApplying: true, onlyPaths: /\/points$/ });
    await upsertInBatches(points, 20);
    double.faults.set({ dropConnections: 2, onlyPaths: /\/points\/scroll$/ });
    const read = await readAll(store, 25);
    double.faults.clear();

    expect(await store.count()).toBe(120);
    expectSamePoints(read, points);
    expect(read.map((point) => point.id)).toEqual(byQdrantOrder(points.map((point) => point.id)));
    expect(route(UPSERT).dropped).toBe(3);
    expect(route(SCROLL).dropped).toBe(2);
    expect(route(UPSERT).requests).toBeGreaterThanOrEqual(6 + 3);
  });

  it('does not retry a 4xx', async () => {
    await expect(store.upsert([memory(1, { vector: [1, 2] })])).rejects.toThrow('Vector dimension error');
    expect(double.stats.all()).toEqual({ [UPSERT]: { requests: 1, injected503: 0, dropped: 0 } });
  });

  it('gives up on a persistent 503 after a few attempts, marking the error retryable', async () => {
    double.faults.set({ fail503: 1_000 });
    const error = await rejection(store.count());
    expect(error.status).toBe(503);
    expect(error.retryable).toBe(true);
    const attempts = route('POST /collections/{name}/points/count').requests;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThanOrEqual(10);
  });

  it('does not retry a call that is unsafe to repeat (collection creation)', async () => {
    const name = uniqueName('once');
    double.faults.set({ fail503: 1 });
    const error = await rejection(createCollection(double.url, name, { size: 4, distance: 'Cosine' }));
    expect(error.status).toBe(503);
    expect(route('PUT /collections/{name}').requests).toBe(1);
    await createCollection(double.url, name, { size: 4, distance: 'Cosine' });
    expect(await collectionExists(double.url, name)).toBe(true);
  });

  it('corrupts one payload field on matching upserts while asked, so every read-back differs', async () => {
    const points = Array.from({ length: 6 }, (_, i) => memory(i));
    const withoutField = memory(7, { payload: { user_id: 'carol' } });
    double.faults.set({ corruptPayloadField: 'data', onlyPaths: /\/points$/ });
    await store.upsert([...points, withoutField]);

    const read = await store.retrieve([...points, withoutField].map((point) => point.id));
    expect(read).toHaveLength(7);
    for (const point of read) {
      expect(point.payload.data).toBe(CORRUPTED_PAYLOAD_VALUE);
      expect(point.payload.user_id).toBe([...points, withoutField].find((p) => p.id === point.id)!.payload.user_id);
    }

    // Only matching paths: a request elsewhere is untouched.
    double.faults.set({ corruptPayloadField: 'data', onlyPaths: /\/scroll$/ });
    await store.upsert(points);
    expectSamePoints(await store.retrieve(points.map((point) => point.id)), points);

    double.faults.clear();
    await store.upsert([withoutField]);
    expect((await store.retrieve([withoutField.id]))[0].payload).toEqual({ user_id: 'carol' });
  });

  it('injects latency only where asked', async () => {
    // A second of latency: an undelayed call on a loaded machine stays well under it.
    double.faults.set({ latencyMs: 1_000, onlyPaths: /\/count$/ });
    let started = Date.now();
    await store.count();
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    started = Date.now();
    await store.readPage(null, 1);
    expect(Date.now() - started).toBeLessThan(990);
  });

  it('a failed alias batch changes nothing (all or nothing)', async () => {
    const alias = uniqueName('keep');
    await updateAliases(double.url, [{ op: 'create', alias, collection }]);
    const error = await rejection(
      updateAliases(double.url, [
        { op: 'delete', alias },
        { op: 'create', alias: uniqueName('new'), collection },
        { op: 'create', alias: uniqueName('bad'), collection: uniqueName('missing') },
      ]),
    );
    expect(error.status).toBe(404);
    expect(await listAliases(double.url, collection)).toEqual([{ alias, collection }]);
  });

  it('takes the API key from QDRANT_API_KEY only, and says so when it is wrong', async () => {
    const secured = await startQdrantDouble({ apiKey: 'test-key' });
    const saved = process.env.QDRANT_API_KEY;
    try {
      delete process.env.QDRANT_API_KEY;
      const refused = await rejection(collectionExists(secured.url, 'x'));
      expect(refused.status).toBe(401);
      expect(refused.message).toContain('QDRANT_API_KEY');

      // Clients are made once per URL, so reach the same server by another name.
      process.env.QDRANT_API_KEY = 'test-key';
      expect(await collectionExists(secured.url.replace('127.0.0.1', 'localhost'), 'x')).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.QDRANT_API_KEY;
      else process.env.QDRANT_API_KEY = saved;
      await secured.stop();
    }
  });

  it('refuses a URL with credentials, without repeating them', async () => {
    const error = await rejection(new QdrantCollection('http://admin:hunter2@127.0.0.1:1', 'x').count());
    expect(error.message).toContain('QDRANT_API_KEY');
    expect(error.message).not.toContain('hunter2');
  });

  describe('wire shapes', () => {
    /** Sends `body` as JSON; a string is sent as it is. */
    async function call(method: string, pathname: string, body?: unknown) {
      const response = await fetch(`${double.url}${pathname}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
    }

    it('answers root and health check like Qdrant', async () => {
      expect((await call('GET', '/')).json).toMatchObject({ title: 'qdrant - vector search engine', version: expect.any(String) });
      expect(await call('GET', '/healthz')).toMatchObject({ status: 200, text: 'healthz check passed' });
    });

    it('wraps results as {result, status: "ok", time} and errors as {status: {error}, time}', async () => {
      const created = await call('PUT', '/collections/shape_a', { vectors: { size: 3, distance: 'Dot' } });
      expect(created.json).toEqual({ result: true, status: 'ok', time: expect.any(Number) });
      const missing = await call('GET', '/collections/no_such');
      expect(missing.status).toBe(404);
      expect(missing.json).toEqual({ status: { error: 'Not found: Collection `no_such` doesn\'t exist!' }, time: expect.any(Number) });
      expect((await call('PUT', '/collections/shape_a', { vectors: { size: 3, distance: 'Dot' } })).status).toBe(409);
      expect((await call('PUT', '/collections/shape_b', { vectors: { size: 3, distance: 'Hamming' } })).status).toBe(400);
      expect((await call('POST', '/collections/shape_a/points/scroll', '{not json')).status).toBe(400);
      expect((await call('POST', '/collections/shape_a/points/scroll', '"a string"')).status).toBe(400);
    });

    it('describes a collection with its config, count and payload schema', async () => {
      await call('PUT', '/collections/shape_info', {
        vectors: { size: 2, distance: 'Cosine' },
        sparse_vectors: { bm25: { modifier: 'idf' } },
      });
      await call('PUT', '/collections/shape_info/points?wait=true', {
        points: [
          { id: 1, vector: [1, 0], payload: { user_id: 'a' } },
          { id: 2, vector: [0, 1], payload: {} },
        ],
      });
      await call('PUT', '/collections/shape_info/index?wait=true', { field_name: 'user_id', field_schema: 'keyword' });
      const info = (await call('GET', '/collections/shape_info')).json.result;
      expect(info).toMatchObject({
        status: 'green',
        points_count: 2,
        config: { params: { vectors: { size: 2, distance: 'Cosine' }, sparse_vectors: { bm25: { modifier: 'idf' } } } },
        payload_schema: { user_id: { data_type: 'keyword', points: 1 } },
      });
      await call('PUT', '/collections/shape_named', { vectors: { text: { size: 2, distance: 'Dot' } } });
      expect((await call('GET', '/collections/shape_named')).json.result.config.params.vectors).toEqual({ text: { size: 2, distance: 'Dot' } });
    });

    it('prints a lone default vector as an array and mixed vectors as a map with ""', async () => {
      await call('PUT', '/collections/shape_vectors', { vectors: { size: 2, distance: 'Dot' }, sparse_vectors: { bm25: {} } });
      await call('PUT', '/collections/shape_vectors/points', {
        points: [
          { id: 1, vector: [1, 2] },
          { id: 2, vector: { '': [3, 4], bm25: { indices: [7], values: [0.5] } } },
        ],
      });
      const { result } = (await call('POST', '/collections/shape_vectors/points', { ids: [1, 2], with_vector: true })).json;
      expect(result).toEqual([
        { id: 1, payload: {}, vector: [1, 2] },
        { id: 2, payload: {}, vector: { '': [3, 4], bm25: { indices: [7], values: [0.5] } } },
      ]);
    });

    it('accepts batch upserts; filters scroll, count and delete by payload value', async () => {
      await call('PUT', '/collections/shape_filter', { vectors: { size: 1, distance: 'Dot' } });
      await call('PUT', '/collections/shape_filter/points', {
        batch: { ids: [1, 2, 3, 4], vectors: [[1], [2], [3], [4]], payloads: [{ u: 'a' }, { u: 'b' }, { u: 'a' }, { u: ['a', 'c'] }] },
      });
      const filter = { must: [{ key: 'u', match: { value: 'a' } }] };
      const page = (await call('POST', '/collections/shape_filter/points/scroll', { filter, limit: 2 })).json.result;
      expect(page).toEqual({ points: [{ id: 1, payload: { u: 'a' } }, { id: 3, payload: { u: 'a' } }], next_page_offset: 4 });
      expect((await call('POST', '/collections/shape_filter/points/count', { filter, exact: true })).json.result).toEqual({ count: 3 });
      await call('POST', '/collections/shape_filter/points/delete', { filter: { must_not: [{ key: 'u', match: { value: 'a' } }] } });
      expect((await call('POST', '/collections/shape_filter/points/count', {})).json.result).toEqual({ count: 3 });
      const unsupported = await call('POST', '/collections/shape_filter/points/count', { filter: { must: [{ key: 'u', range: { gt: 1 } }] } });
      expect(unsupported.status).toBe(400);
    });

    it('resolves aliases on collection endpoints', async () => {
      await call('PUT', '/collections/shape_real', { vectors: { size: 1, distance: 'Dot' } });
      await call('POST', '/collections/aliases', { actions: [{ create_alias: { collection_name: 'shape_real', alias_name: 'shape_alias' } }] });
      await call('PUT', '/collections/shape_alias/points', { points: [{ id: 5, vector: [1] }] });
      expect((await call('GET', '/collections/shape_alias/exists')).json.result).toEqual({ exists: true });
      expect((await call('POST', '/collections/shape_real/points/count', {})).json.result).toEqual({ count: 1 });
      expect((await call('GET', '/aliases')).json.result.aliases).toContainEqual({ alias_name: 'shape_alias', collection_name: 'shape_real' });
      const clash = await call('PUT', '/collections/shape_alias', { vectors: { size: 1, distance: 'Dot' } });
      expect(clash.status).toBe(400);
    });
  });

  it('runs standalone and prints its URL', async () => {
    const serverPath = path.join(__dirname, 'qdrant-double', 'server.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', serverPath, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const firstLine = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`standalone double exited with ${code}`)));
      });
      const match = /^QDRANT_DOUBLE_URL=(http:\/\/127\.0\.0\.1:\d+)$/.exec(firstLine);
      expect(match).not.toBeNull();
      const standaloneUrl = match![1];
      await createCollection(standaloneUrl, 'standalone', { size: 2, distance: 'Cosine' });
      expect(await listCollections(standaloneUrl)).toEqual(['standalone']);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
