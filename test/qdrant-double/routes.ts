/**
 * The REST subset memshift uses, mapped onto the double's state with the
 * official request and response shapes.
 */
import { parseCollectionConfig, parsePayloadIndex, type Collection, type ScoredPoint } from './collection';
import { formatError, notSupported } from './errors';
import { CORRUPTED_PAYLOAD_VALUE } from './faults';
import { qdrantParsedJson } from './floats';
import {
  DEFAULT_VECTOR,
  parsePointId,
  parseVectorStruct,
  vectorStructOutput,
  type NamedVectors,
  type PointId,
  type StoredPoint,
} from './points';
import type { AliasAction, QdrantState } from './state';

/** The version whose behaviour the double follows (float parsing, sparse index order). */
export const DOUBLE_QDRANT_VERSION = '1.19.0';

type Body = Record<string, any>;

export interface RequestContext {
  state: QdrantState;
  params: Record<string, string>;
  body: Body;
  query: URLSearchParams;
  /** The `corruptPayloadField` fault, when it is on for this request. */
  corruptPayloadField?: string;
}

/** `result` is wrapped as {result, status, time}; `raw` is sent as it is (JSON, or text for strings). */
export type Reply = { result: unknown } | { raw: unknown };

export interface Route {
  method: string;
  /** e.g. "/collections/{name}/points"; also the key of the route's counters. */
  template: string;
  handle(ctx: RequestContext): Reply;
}

const ok = (result: unknown): Reply => ({ result });

function updateResult(ctx: RequestContext, operationId: number): Reply {
  const acknowledged = ctx.query.get('wait') !== 'true';
  return ok({ operation_id: operationId, status: acknowledged ? 'acknowledged' : 'completed' });
}

function collectionOf(ctx: RequestContext): Collection {
  return ctx.state.resolve(ctx.params.name).collection;
}

export const ROUTES: Route[] = [
  {
    method: 'GET',
    template: '/',
    handle: () => ({ raw: { title: 'qdrant - vector search engine', version: DOUBLE_QDRANT_VERSION, commit: 'memshift-test-double' } }),
  },
  { method: 'GET', template: '/healthz', handle: () => ({ raw: 'healthz check passed' }) },
  {
    method: 'GET',
    template: '/collections',
    handle: ({ state }) => ok({ collections: state.collectionNames().map((name) => ({ name })) }),
  },
  {
    method: 'POST',
    template: '/collections/aliases',
    handle: ({ state, body }) => {
      if (!Array.isArray(body.actions)) throw formatError('missing field `actions`');
      state.applyAliasActions(body.actions as AliasAction[]);
      return ok(true);
    },
  },
  { method: 'GET', template: '/aliases', handle: ({ state }) => ok({ aliases: state.aliasesOf() }) },
  { method: 'GET', template: '/collections/{name}', handle: (ctx) => ok(collectionInfo(collectionOf(ctx))) },
  {
    method: 'PUT',
    template: '/collections/{name}',
    handle: ({ state, params, body }) => {
      state.create(params.name, parseCollectionConfig(body));
      return ok(true);
    },
  },
  { method: 'DELETE', template: '/collections/{name}', handle: ({ state, params }) => ok(state.delete(params.name)) },
  { method: 'GET', template: '/collections/{name}/exists', handle: ({ state, params }) => ok({ exists: state.exists(params.name) }) },
  {
    method: 'GET',
    template: '/collections/{name}/aliases',
    handle: ({ state, params }) => ok({ aliases: state.aliasesOf(state.resolve(params.name).name) }),
  },
  {
    method: 'PUT',
    template: '/collections/{name}/points',
    handle: (ctx) => updateResult(ctx, collectionOf(ctx).upsert(corrupted(pointsToWrite(ctx.body), ctx.corruptPayloadField))),
  },
  { method: 'POST', template: '/collections/{name}/points', handle: retrievePoints },
  { method: 'POST', template: '/collections/{name}/points/scroll', handle: scrollPoints },
  {
    method: 'POST',
    template: '/collections/{name}/points/count',
    handle: (ctx) => ok({ count: collectionOf(ctx).matching(ctx.body.filter).length }),
  },
  { method: 'POST', template: '/collections/{name}/points/delete', handle: deletePoints },
  { method: 'POST', template: '/collections/{name}/points/query', handle: queryPoints },
  {
    method: 'PUT',
    template: '/collections/{name}/index',
    handle: (ctx) => {
      const field = ctx.body.field_name;
      if (typeof field !== 'string') throw formatError('missing field `field_name`');
      return updateResult(ctx, collectionOf(ctx).createPayloadIndex(field, parsePayloadIndex(ctx.body.field_schema)));
    },
  },
  { method: 'POST', template: '/collections/{name}/snapshots', handle: ({ state, params }) => ok(state.createSnapshot(params.name)) },
  { method: 'GET', template: '/collections/{name}/snapshots', handle: ({ state, params }) => ok(state.listSnapshots(params.name)) },
  {
    method: 'PUT',
    template: '/collections/{name}/snapshots/recover',
    handle: ({ state, params, body }) => {
      if (typeof body.location !== 'string') throw formatError('missing field `location`');
      state.recoverSnapshot(params.name, body.location, body.checksum);
      return ok(true);
    },
  },
];

function collectionInfo(collection: Collection) {
  const params: Body = {
    vectors: structuredClone(collection.config.vectors),
    shard_number: 1,
    replication_factor: 1,
    write_consistency_factor: 1,
    on_disk_payload: true,
  };
  if (collection.config.sparse_vectors) params.sparse_vectors = structuredClone(collection.config.sparse_vectors);
  return {
    status: 'green',
    optimizer_status: 'ok',
    indexed_vectors_count: 0,
    points_count: collection.size,
    segments_count: 1,
    config: {
      params,
      hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
      optimizer_config: {
        deleted_threshold: 0.2,
        vacuum_min_vector_number: 1000,
        default_segment_number: 0,
        max_segment_size: null,
        memmap_threshold: null,
        indexing_threshold: 20000,
        flush_interval_sec: 5,
        max_optimization_threads: null,
      },
      wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
      quantization_config: null,
      strict_mode_config: { enabled: false },
    },
    payload_schema: collection.payloadSchema(),
  };
}

/** A payload as Qdrant stores it: a fresh copy whose numbers went through Qdrant's float parsing. */
function parsedPayload(payload: Record<string, unknown> | undefined): Record<string, unknown> {
  return qdrantParsedJson(payload ?? {}) as Record<string, unknown>;
}

/** Upsert's two body forms: `points: [...]` or column-wise `batch: {ids, vectors, payloads}`. */
function pointsToWrite(body: Body): Omit<StoredPoint, 'version'>[] {
  if (Array.isArray(body.points)) {
    return body.points.map((point: Body) => ({
      id: parsePointId(point.id),
      payload: parsedPayload(point.payload),
      vectors: parseVectorStruct(point.vector),
    }));
  }
  if (body.batch && Array.isArray(body.batch.ids)) return batchPoints(body.batch);
  throw formatError('expected `points` or `batch`');
}

function corrupted(points: Omit<StoredPoint, 'version'>[], field: string | undefined): Omit<StoredPoint, 'version'>[] {
  if (field === undefined) return points;
  return points.map((point) => ({ ...point, payload: { ...point.payload, [field]: CORRUPTED_PAYLOAD_VALUE } }));
}

function batchPoints(batch: Body): Omit<StoredPoint, 'version'>[] {
  const vectorsByName: Record<string, unknown[]> = Array.isArray(batch.vectors) ? { [DEFAULT_VECTOR]: batch.vectors } : (batch.vectors ?? {});
  return batch.ids.map((id: unknown, i: number) => {
    const vectors: NamedVectors = {};
    for (const [name, column] of Object.entries(vectorsByName)) {
      Object.assign(vectors, parseVectorStruct({ [name]: column[i] }));
    }
    return { id: parsePointId(id), payload: parsedPayload(batch.payloads?.[i]), vectors };
  });
}

function retrievePoints(ctx: RequestContext): Reply {
  const { ids, with_payload: withPayload = true, with_vector: withVector = false } = ctx.body;
  if (!Array.isArray(ids)) throw formatError('missing field `ids`');
  const collection = collectionOf(ctx);
  const wanted = [...new Set(ids.map(parsePointId))];
  const found = wanted.map((id) => collection.get(id)).filter((point): point is StoredPoint => point !== undefined);
  return ok(found.map((point) => record(point, withPayload, withVector)));
}

function scrollPoints(ctx: RequestContext): Reply {
  const { limit = 10, offset, filter, with_payload: withPayload = true, with_vector: withVector = false } = ctx.body;
  if (ctx.body.order_by !== undefined) throw notSupported('scroll order_by');
  const start = offset === undefined || offset === null ? undefined : parsePointId(offset);
  const page = collectionOf(ctx).scroll(start, limit, filter);
  return ok({ points: page.points.map((point) => record(point, withPayload, withVector)), next_page_offset: page.next });
}

function deletePoints(ctx: RequestContext): Reply {
  const collection = collectionOf(ctx);
  let ids: PointId[];
  if (Array.isArray(ctx.body.points)) ids = ctx.body.points.map(parsePointId);
  else if (ctx.body.filter) ids = collection.matching(ctx.body.filter).map((point) => point.id);
  else throw formatError('expected `points` or `filter`');
  return updateResult(ctx, collection.delete(ids));
}

/** Nearest-neighbour query: a dense array or a sparse {indices, values}, on the vector named by `using`. */
function queryPoints(ctx: RequestContext): Reply {
  const { using = DEFAULT_VECTOR, filter, limit = 10, offset = 0, with_payload: withPayload = false, with_vector: withVector = false } = ctx.body;
  const query = ctx.body.query?.nearest ?? ctx.body.query;
  const collection = collectionOf(ctx);
  let scored: ScoredPoint[];
  if (Array.isArray(query)) scored = collection.scoreDense(query, using, filter);
  else if (query && typeof query === 'object' && 'indices' in query) scored = collection.scoreSparse(query, using, filter);
  else throw notSupported(`query ${JSON.stringify(ctx.body.query)}`);
  const points = scored.slice(offset, offset + limit).map(({ point, score }) => ({
    id: point.id,
    version: point.version,
    score,
    ...record(point, withPayload, withVector),
  }));
  return ok({ points });
}

/** A point as scroll / retrieve print it; payload and vector only when asked for. */
function record(point: StoredPoint, withPayload: unknown, withVector: unknown): Body {
  const out: Body = { id: point.id };
  const payload = selectPayload(point.payload, withPayload);
  if (payload !== undefined) out.payload = payload;
  const vectors = selectVectors(point.vectors, withVector);
  if (vectors !== undefined) out.vector = vectorStructOutput(vectors);
  return out;
}

function selectPayload(payload: Record<string, unknown>, selector: unknown): Record<string, unknown> | undefined {
  if (selector === true) return structuredClone(payload);
  if (selector === false) return undefined;
  if (Array.isArray(selector)) {
    return Object.fromEntries(Object.entries(payload).filter(([key]) => selector.includes(key)).map(([k, v]) => [k, structuredClone(v)]));
  }
  throw notSupported(`with_payload ${JSON.stringify(selector)}`);
}

function selectVectors(vectors: NamedVectors, selector: unknown): NamedVectors | undefined {
  if (selector === true) return vectors;
  if (selector === false) return undefined;
  if (Array.isArray(selector)) return Object.fromEntries(Object.entries(vectors).filter(([name]) => selector.includes(name)));
  throw notSupported(`with_vector ${JSON.stringify(selector)}`);
}
