/**
 * The Qdrant double's gRPC surface shares the REST surface's collections, as
 * a real Qdrant's does (the same tests run against QDRANT_URL and
 * QDRANT_GRPC_URL when set):
 * points upserted with @qdrant/js-client-grpc read back equal through
 * @qdrant/js-client-rest (vectors as float32, payload numbers as sent), points
 * written through REST read back through gRPC with integers as integers, and
 * gRPC scroll pages through all of them in Qdrant's id order.
 */
import type { QdrantClient as GrpcClient, Value } from '@qdrant/js-client-grpc' with { 'resolution-mode': 'import' };
import type { QdrantClient as RestClient } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const { QdrantClient: GrpcQdrantClient } = require('@qdrant/js-client-grpc') as typeof import('@qdrant/js-client-grpc', { with: { 'resolution-mode': 'import' } });
const { QdrantClient: RestQdrantClient } = require('@qdrant/js-client-rest') as typeof import('@qdrant/js-client-rest', { with: { 'resolution-mode': 'import' } });

const COLLECTION = `grpc_and_rest_${Date.now().toString(36)}`;
const DIMENSIONS = 4;

let qdrant: TestQdrant;
let grpc: GrpcClient;
let rest: RestClient;

beforeAll(async () => {
  qdrant = await startTestQdrant({ grpc: true });
  grpc = new GrpcQdrantClient({ url: qdrant.grpcUrl });
  rest = new RestQdrantClient({ url: qdrant.url, checkCompatibility: false });
  // Dot: stored as sent (Cosine would normalise), so the float32 values are visible as they are.
  await rest.createCollection(COLLECTION, { vectors: { size: DIMENSIONS, distance: 'Dot' } });
});

afterAll(async () => {
  await rest?.deleteCollection(COLLECTION).catch(() => undefined);
  await qdrant?.stop();
});

/** A JSON value as a client puts it in a protobuf `Value`: integers as integer_value, other numbers as double_value. */
function toValue(json: unknown): Partial<Value> {
  if (json === null) return { kind: { case: 'nullValue', value: 0 } };
  if (typeof json === 'number') return Number.isInteger(json) ? { kind: { case: 'integerValue', value: BigInt(json) } } : { kind: { case: 'doubleValue', value: json } };
  if (typeof json === 'string') return { kind: { case: 'stringValue', value: json } };
  if (typeof json === 'boolean') return { kind: { case: 'boolValue', value: json } };
  if (Array.isArray(json)) return { kind: { case: 'listValue', value: { values: json.map(toValue) } } } as Partial<Value>;
  return { kind: { case: 'structValue', value: { fields: toFields(json as Record<string, unknown>) } } } as Partial<Value>;
}

function toFields(payload: Record<string, unknown>): Record<string, Value> {
  return Object.fromEntries(Object.entries(payload).map(([key, value]) => [key, toValue(value) as Value]));
}

function fromValue(value: Value): unknown {
  const kind = value.kind;
  if (kind.case === 'nullValue' || kind.case === undefined) return null;
  if (kind.case === 'integerValue') return { int: Number(kind.value) };
  if (kind.case === 'doubleValue') return { double: kind.value };
  if (kind.case === 'structValue') return Object.fromEntries(Object.entries(kind.value.fields).map(([k, v]) => [k, fromValue(v)]));
  if (kind.case === 'listValue') return kind.value.values.map(fromValue);
  return kind.value;
}

const grpcId = (id: number | string) => ({ pointIdOptions: typeof id === 'number' ? { case: 'num' as const, value: BigInt(id) } : { case: 'uuid' as const, value: id } });

const points = [
  { id: 'f0000000-0000-4000-8000-000000000001', vector: [0.1, -0.2, 1 / 3, 1e-40], payload: { content: 'naïve café — 日本語 🧠 "quoted"\n', created_at: 1700000000.8524659 } },
  { id: 42, vector: [1, 2, 3, 4], payload: { count: 7, negative: -12, big: 2 ** 53 - 1, ratio: 0.1, flag: true, none: null } },
  {
    id: '0a000000-0000-4000-8000-000000000002',
    vector: [Math.PI, -Math.E, 1e10, 0],
    payload: { metadata: { user_id: 'u1', tags: ['a', 'ü'], deep: { list: [1, 2.5, { x: null, y: 'z' }] } } },
  },
  { id: 3, vector: [0.5, 0.25, 0.125, -0.0625], payload: {} },
];
// Qdrant's order: integer ids first, numerically, then uuids.
const idOrder = [3, 42, '0a000000-0000-4000-8000-000000000002', 'f0000000-0000-4000-8000-000000000001'];

it('points upserted over gRPC read back equal over REST, and gRPC scroll returns them in id order', async () => {
  const result = await grpc.api('points').upsert({
    collectionName: COLLECTION,
    wait: true,
    points: points.map((point) => ({
      id: grpcId(point.id),
      vectors: { vectorsOptions: { case: 'vector', value: { vector: { case: 'dense', value: { data: point.vector } } } } },
      payload: toFields(point.payload),
    })),
  });
  expect(result.result?.status).toBe(2); // Completed

  const page = await rest.scroll(COLLECTION, { limit: 10, with_payload: true, with_vector: true });
  expect(page.points.map((p) => p.id)).toEqual(idOrder);
  for (const point of points) {
    const stored = page.points.find((p) => p.id === point.id)!;
    // Over gRPC a double arrives as the double sent: no decimal text, so none of REST's second rounding.
    expect(stored.payload).toEqual(point.payload);
    expect(stored.vector).toEqual(point.vector.map(Math.fround));
  }

  const seen: { id: unknown; payload: unknown; vector: number[] }[] = [];
  let offset: ReturnType<typeof grpcId> | undefined;
  do {
    const response = await grpc.api('points').scroll({
      collectionName: COLLECTION,
      limit: 3,
      offset,
      withPayload: { selectorOptions: { case: 'enable', value: true } },
      withVectors: { selectorOptions: { case: 'enable', value: true } },
    });
    for (const point of response.result) {
      const options = point.id!.pointIdOptions;
      const vector = point.vectors?.vectorsOptions.case === 'vector' ? point.vectors.vectorsOptions.value.vector : undefined;
      seen.push({
        id: options.case === 'num' ? Number(options.value) : options.value,
        payload: Object.fromEntries(Object.entries(point.payload).map(([k, v]) => [k, fromValue(v)])),
        vector: vector?.case === 'dense' ? vector.value.data : [],
      });
    }
    offset = response.nextPageOffset as ReturnType<typeof grpcId> | undefined;
  } while (offset);
  expect(seen.map((p) => p.id)).toEqual(idOrder);
  expect(seen.find((p) => p.id === 42)).toEqual({
    id: 42,
    payload: { count: { int: 7 }, negative: { int: -12 }, big: { int: 2 ** 53 - 1 }, ratio: { double: 0.1 }, flag: true, none: null },
    vector: [1, 2, 3, 4],
  });
  expect(seen.find((p) => p.id === points[0].id)!.vector).toEqual(points[0].vector.map(Math.fround));

  const count = await grpc.api('points').count({ collectionName: COLLECTION, exact: true });
  expect(count.result?.count).toBe(BigInt(points.length));
});

it('points upserted over REST read back over gRPC with integers as integers', async () => {
  await rest.upsert(COLLECTION, { wait: true, points: [{ id: 1, vector: [1, 0, 0, 0], payload: { n: 3, f: 0.5, nested: { m: [1, 1.5] } } }] });
  const response = await grpc.api('points').scroll({ collectionName: COLLECTION, limit: 1 });
  const payload = Object.fromEntries(Object.entries(response.result[0].payload).map(([k, v]) => [k, fromValue(v)]));
  expect(payload).toEqual({ n: { int: 3 }, f: { double: 0.5 }, nested: { m: [{ int: 1 }, { double: 1.5 }] } });
  expect(response.result[0].vectors).toBeUndefined(); // vectors only when asked for
});
