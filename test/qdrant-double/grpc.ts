/**
 * The double's gRPC surface, for what a copy's write and read path needs:
 * Points.Upsert, Points.Scroll and Points.Count, plus Qdrant.HealthCheck, which
 * @qdrant/js-client-grpc calls when a client is constructed. Collections are
 * created and dropped through REST. Served over HTTP/2 with the gRPC protocol
 * (@connectrpc/connect-node, which the client package depends on) from the
 * service descriptors the client ships, on the same QdrantState as the REST
 * surface: a point written one way reads back the other. Like Qdrant, it
 * accepts and sends gzip. Faults and request counters are REST-only.
 *
 * Qdrant's conversions (lib/api/src/conversions/json.rs and vectors.rs):
 * - payload `Value`s become JSON as they are: integer_value an integer,
 *   double_value that exact double (no decimal text in between, so unlike
 *   REST no second rounding); a double that is not finite is refused.
 * - stored payload numbers go out as integer_value when integral, else
 *   double_value. Qdrant keeps 2.0 sent as a double a double; the double
 *   holds JS numbers and cannot tell 2.0 from 2, so that one comes back as
 *   integer_value 2.
 * - vectors arrive as float32 (`repeated float`) and are stored as those
 *   values; output uses `vector.dense`, as Qdrant 1.19 does.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import { compressionGzip, connectNodeAdapter } from '@connectrpc/connect-node';
import type {
  CountPoints,
  PointId as GrpcPointId,
  PointStruct,
  ScrollPoints,
  UpsertPoints,
  Value,
  Vector,
  Vectors,
  WithPayloadSelector,
  WithVectorsSelector,
} from '@qdrant/js-client-grpc' with { 'resolution-mode': 'import' };
import { QdrantApiError, notSupported } from './errors';
import { DEFAULT_VECTOR, parsePointId, type NamedVectors, type PointId, type StoredPoint } from './points';
import { DOUBLE_QDRANT_VERSION } from './routes';
import type { QdrantState } from './state';

type GrpcModule = typeof import('@qdrant/js-client-grpc', { with: { 'resolution-mode': 'import' } });
type PointsServiceModule = typeof import('../../node_modules/@qdrant/js-client-grpc/dist/types/proto/points_service_pb.js', {
  with: { 'resolution-mode': 'import' },
});
// The package exports messages and the Qdrant service but not the Points service, so that comes from its CommonJS build.
const grpcMain = require.resolve('@qdrant/js-client-grpc');
const { Qdrant, UpdateStatus, NullValue } = require(grpcMain) as GrpcModule;
const { Points } = require(path.join(path.dirname(grpcMain), 'proto/points_service_pb.js')) as PointsServiceModule;

type ValueInit = MessageInitShape<GrpcModule['ValueSchema']>;

export interface GrpcSurface {
  url: string;
  stop(): Promise<void>;
}

export async function startGrpcSurface(state: QdrantState, options: { port?: number; apiKey?: string } = {}): Promise<GrpcSurface> {
  const routes = (router: ConnectRouter) => {
    router.service(Qdrant, {
      healthCheck: () => ({ title: 'qdrant - vector search engine', version: DOUBLE_QDRANT_VERSION, commit: 'memshift-test-double' }),
    });
    router.service(Points, {
      upsert: (req, ctx) => handle(ctx, options.apiKey, () => upsert(state, req)),
      scroll: (req, ctx) => handle(ctx, options.apiKey, () => scroll(state, req)),
      count: (req, ctx) => handle(ctx, options.apiKey, () => count(state, req)),
    });
  };
  const handler = connectNodeAdapter({ routes, grpc: true, grpcWeb: false, connect: false, acceptCompression: [compressionGzip] });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        for (const session of sessions) session.destroy();
      }),
  };
}

/** Runs a call with Qdrant's api-key check, its timing, and its errors as gRPC statuses. */
function handle<T>(ctx: HandlerContext, apiKey: string | undefined, call: () => T): T & { time: number } {
  const started = process.hrtime.bigint();
  if (apiKey !== undefined && ctx.requestHeader.get('api-key') !== apiKey) {
    throw new ConnectError('Must provide an API key or an Authorization bearer token', Code.Unauthenticated);
  }
  try {
    return { ...call(), time: Number(process.hrtime.bigint() - started) / 1e9 };
  } catch (error) {
    if (error instanceof QdrantApiError) throw new ConnectError(error.message, STATUS_CODES[error.status] ?? Code.Internal);
    throw error;
  }
}

const STATUS_CODES: Record<number, Code> = { 400: Code.InvalidArgument, 404: Code.NotFound, 409: Code.AlreadyExists };

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function upsert(state: QdrantState, req: UpsertPoints) {
  const collection = state.resolve(req.collectionName).collection;
  const operationId = collection.upsert(req.points.map(pointToWrite));
  return { result: { operationId: BigInt(operationId), status: req.wait ? UpdateStatus.Completed : UpdateStatus.Acknowledged } };
}

function scroll(state: QdrantState, req: ScrollPoints) {
  if (req.filter !== undefined) throw notSupported('gRPC scroll filter');
  if (req.orderBy !== undefined) throw notSupported('scroll order_by');
  const collection = state.resolve(req.collectionName).collection;
  const page = collection.scroll(req.offset === undefined ? undefined : pointIdFromProto(req.offset), req.limit ?? 10, undefined);
  return {
    result: page.points.map((point) => retrievedPoint(point, req.withPayload, req.withVectors)),
    nextPageOffset: page.next === null ? undefined : pointIdToProto(page.next),
  };
}

function count(state: QdrantState, req: CountPoints) {
  if (req.filter !== undefined) throw notSupported('gRPC count filter');
  return { result: { count: BigInt(state.resolve(req.collectionName).collection.size) } };
}

function pointToWrite(point: PointStruct): Omit<StoredPoint, 'version'> {
  if (point.id === undefined) throw invalid('Empty ID is not allowed');
  return { id: pointIdFromProto(point.id), payload: payloadFromProto(point.payload), vectors: vectorsFromProto(point.vectors) };
}

function pointIdFromProto(id: GrpcPointId): PointId {
  const options = id.pointIdOptions;
  if (options.case === 'num') {
    if (options.value > BigInt(Number.MAX_SAFE_INTEGER)) throw notSupported(`point id ${options.value} (beyond 2^53)`);
    return Number(options.value);
  }
  if (options.case === 'uuid') {
    try {
      return parsePointId(options.value);
    } catch {
      throw invalid(`Unable to parse UUID: ${options.value}`);
    }
  }
  throw invalid('Empty ID is not allowed');
}

function pointIdToProto(id: PointId) {
  return { pointIdOptions: typeof id === 'number' ? { case: 'num' as const, value: BigInt(id) } : { case: 'uuid' as const, value: id } };
}

function vectorsFromProto(vectors: Vectors | undefined): NamedVectors {
  const options = vectors?.vectorsOptions;
  if (options?.case === 'vector') return { [DEFAULT_VECTOR]: denseFromProto(options.value) };
  if (options?.case === 'vectors') {
    return Object.fromEntries(Object.entries(options.value.vectors).map(([name, vector]) => [name, denseFromProto(vector)]));
  }
  throw invalid('No Vector Provided');
}

/** Dense vectors only, in the current (`dense`) or the deprecated (`data`) field; the copy writes no others over gRPC. */
function denseFromProto(vector: Vector): number[] {
  if (vector.vector.case === 'dense') return vector.vector.value.data;
  if (vector.vector.case === undefined && vector.indices === undefined && vector.vectorsCount === undefined) return vector.data;
  throw notSupported(`gRPC ${vector.vector.case ?? 'sparse or multi-dense'} vectors`);
}

/** Qdrant's reading of a gRPC payload as JSON (also the bench's, for what Scroll returns). */
export function payloadFromProto(fields: Record<string, Value>): Record<string, unknown> {
  const payload: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) payload[key] = jsonFromProto(value);
  return payload;
}

function jsonFromProto(value: Value): unknown {
  const kind = value.kind;
  switch (kind.case) {
    case undefined:
    case 'nullValue':
      return null;
    case 'doubleValue':
      if (!Number.isFinite(kind.value)) throw invalid('cannot convert to json number');
      return kind.value;
    case 'integerValue':
      // A JS number: integers beyond 2^53 lose precision here, not in Qdrant.
      return Number(kind.value);
    case 'stringValue':
    case 'boolValue':
      return kind.value;
    case 'structValue':
      return payloadFromProto(kind.value.fields);
    case 'listValue':
      return kind.value.values.map(jsonFromProto);
  }
}

const I64_LIMIT = 2 ** 63;

function jsonToProto(json: unknown): ValueInit {
  if (json === null || json === undefined) return { kind: { case: 'nullValue', value: NullValue.NULL_VALUE } };
  if (typeof json === 'number') {
    return Number.isInteger(json) && json >= -I64_LIMIT && json < I64_LIMIT
      ? { kind: { case: 'integerValue', value: BigInt(json) } }
      : { kind: { case: 'doubleValue', value: json } };
  }
  if (typeof json === 'string') return { kind: { case: 'stringValue', value: json } };
  if (typeof json === 'boolean') return { kind: { case: 'boolValue', value: json } };
  if (Array.isArray(json)) return { kind: { case: 'listValue', value: { values: json.map(jsonToProto) } } };
  return { kind: { case: 'structValue', value: { fields: payloadToProto(json as Record<string, unknown>) } } };
}

/** A JSON payload as gRPC carries it: integers as integers, other numbers as doubles (also the bench's, for Upsert). */
export function payloadToProto(payload: Record<string, unknown>): Record<string, ValueInit> {
  const fields: Record<string, ValueInit> = {};
  for (const [key, value] of Object.entries(payload)) fields[key] = jsonToProto(value);
  return fields;
}

/** A point as Scroll returns it: payload and vectors only as selected (payload by default, vectors not). */
function retrievedPoint(point: StoredPoint, withPayload: WithPayloadSelector | undefined, withVectors: WithVectorsSelector | undefined) {
  const payloadOption = withPayload?.selectorOptions ?? { case: 'enable', value: true };
  let payload: Record<string, unknown> = {};
  if (payloadOption.case === 'enable' && payloadOption.value) payload = point.payload;
  else if (payloadOption.case === 'include') payload = Object.fromEntries(Object.entries(point.payload).filter(([key]) => payloadOption.value.fields.includes(key)));
  else if (payloadOption.case === 'exclude') throw notSupported('with_payload exclude');

  const vectorOption = withVectors?.selectorOptions;
  let vectors: NamedVectors | undefined;
  if (vectorOption?.case === 'enable' && vectorOption.value) vectors = point.vectors;
  else if (vectorOption?.case === 'include') vectors = Object.fromEntries(Object.entries(point.vectors).filter(([name]) => vectorOption.value.names.includes(name)));

  return { id: pointIdToProto(point.id), payload: payloadToProto(payload), vectors: vectors && vectorsToProto(vectors) };
}

/** Only the default vector → a single vector; anything else → vectors by name (as REST's vectorStructOutput). */
function vectorsToProto(vectors: NamedVectors) {
  const dense = (vector: unknown) => {
    if (!Array.isArray(vector)) throw notSupported('gRPC output of sparse vectors');
    return { vector: { case: 'dense' as const, value: { data: vector } } };
  };
  const names = Object.keys(vectors);
  if (names.length === 1 && names[0] === DEFAULT_VECTOR) return { vectorsOptions: { case: 'vector' as const, value: dense(vectors[DEFAULT_VECTOR]) } };
  return { vectorsOptions: { case: 'vectors' as const, value: { vectors: Object.fromEntries(names.map((name) => [name, dense(vectors[name])])) } } };
}
