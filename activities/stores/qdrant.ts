/**
 * Qdrant as a point source and target, plus the collection, alias, index and
 * snapshot calls the runbooks' activities need — all on the official REST
 * client. The API key comes only from the worker's QDRANT_API_KEY; plans and
 * workflow history carry bare URLs.
 *
 * Calls that are safe to repeat are retried a few times on transient failures
 * (5xx, 429, connection resets and refusals, timeouts); 4xx answers are not,
 * and become a QdrantError that says what is wrong.
 */
import type { QdrantClient, Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };
import { ApplicationFailure } from '@temporalio/common';
import type { CopyRange, IdRange } from '../../workflows/messages';
import type { CountsByPayload, MemoryPoint, Page, PointSource, PointTarget, SparseVector } from './contract';
import { beforeEnd, compareIds } from './key-order';

// The package ships a CommonJS build, but its type declarations are marked ESM;
// so types come in as an import type and the class from the CommonJS build.
type QdrantModule = typeof import('@qdrant/js-client-rest', { with: { 'resolution-mode': 'import' } });
const { QdrantClient: QdrantRestClient } = require('@qdrant/js-client-rest') as QdrantModule;

export type Distance = 'Cosine' | 'Euclid' | 'Dot' | 'Manhattan';
export type PayloadIndexType = Schemas['PayloadSchemaType'];

/** Qdrant's name for the unnamed dense vector inside a map of named vectors. */
const DEFAULT_VECTOR = '';
/** splitKeys: probes per range for uuid ids; page size of the id-only scan for integer ids. */
const SPLIT_PROBES_PER_PART = 16;
const SPLIT_SCAN_PAGE = 10_000;
const REQUEST_TIMEOUT_MS = 60_000;
const MAX_ATTEMPTS = 5;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * A failed Qdrant call; `retryable` says whether trying again later may
 * succeed. It is an ApplicationFailure, so Temporal retries the activity only
 * when it is retryable: a missing collection or a refused key fails at once.
 * The client's own error is kept off the failure: history should hold our
 * message, not whatever the client captured.
 */
export class QdrantError extends ApplicationFailure {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
  ) {
    super(message, 'QdrantError', !retryable);
  }
}

export interface CollectionSpec {
  size: number;
  distance: Distance;
  /** Name of the dense vector; absent = Qdrant's unnamed vector (as mem0 uses). */
  vectorName?: string;
  /** Named sparse vectors to add, e.g. ['bm25'] for mem0 2.x. */
  sparse?: string[];
  /** Modifier for every sparse vector in `sparse`; mem0's BM25 needs 'idf'. */
  sparseModifier?: 'idf' | 'none';
}

export interface CollectionDescription {
  /** Dense vectors; `name` null is the unnamed one. */
  dense: { name: string | null; size: number; distance: Distance }[];
  sparse: { name: string; modifier: 'idf' | 'none' }[];
  /** Exact, from a counting request (collection info's own count is approximate). */
  pointsCount: number;
  /** Indexed payload fields and their types, e.g. { user_id: 'keyword' }. */
  payloadIndexes: Record<string, string>;
}

export interface AliasBinding {
  alias: string;
  collection: string;
}

export type AliasAction =
  | { op: 'create'; alias: string; collection: string }
  | { op: 'delete'; alias: string }
  | { op: 'rename'; from: string; to: string };

export interface SnapshotInfo {
  name: string;
  createdAt: string | null;
  size: number;
  checksum: string | null;
}

export interface ScoredId {
  id: string;
  score: number;
}

/** A nearest-neighbour query on the dense vector, or on a named sparse vector. */
export type NearestQuery = { dense: number[] } | { sparse: SparseVector; using: string };

export interface QdrantCollectionOptions {
  /** Name of the dense vector to read and write; absent = the unnamed vector. */
  vectorName?: string;
  /** For create(); default 'Cosine'. */
  distance?: Distance;
  /** For create(): named sparse vectors and their modifier. */
  sparse?: string[];
  sparseModifier?: 'idf' | 'none';
}

interface CallContext {
  url: string;
  action: string;
  collection?: string;
  /** Only calls that are safe to repeat are retried inside the adapter. */
  idempotent: boolean;
}

/**
 * One collection (or alias) as a PointSource and PointTarget. Cursors are
 * Qdrant's `next_page_offset`, JSON-encoded so integer ids survive.
 */
export class QdrantCollection implements PointSource, PointTarget, CountsByPayload {
  constructor(
    readonly url: string,
    readonly collection: string,
    private readonly options: QdrantCollectionOptions = {},
  ) {}

  /** Whether it exists, its dense vector size and exact point count. */
  async describe(): Promise<{ exists: boolean; dimensions: number | null; points: number }> {
    if (!(await collectionExists(this.url, this.collection))) return { exists: false, dimensions: null, points: 0 };
    const description = await describeCollection(this.url, this.collection);
    const wanted = this.options.vectorName ?? null;
    const dense = description.dense.find((vector) => vector.name === wanted);
    return { exists: true, dimensions: dense?.size ?? null, points: description.pointsCount };
  }

  async create(dimensions: number): Promise<void> {
    const { vectorName, distance = 'Cosine', sparse, sparseModifier } = this.options;
    await createCollection(this.url, this.collection, { size: dimensions, distance, vectorName, sparse, sparseModifier });
  }

  /** Deletes the collection by its own name; through an alias Qdrant deletes nothing. */
  async drop(): Promise<void> {
    await deleteCollection(this.url, this.collection);
  }

  count(): Promise<number> {
    return this.countWhere(undefined);
  }

  /** A count per value: Qdrant answers each from its payload index where the collection has one. */
  async countsMatching(path: string, values: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const value of values) counts.set(value, await this.countWhere({ must: [{ key: path, match: { value } }] }));
    return counts;
  }

  private countWhere(filter: Schemas['Filter'] | undefined): Promise<number> {
    return this.call('count points', true, async (client) => (await client.count(this.collection, { exact: true, filter })).count);
  }

  async readPage(cursor: string | null, limit: number): Promise<Page> {
    const offset = cursor === null ? undefined : decodeCursor(cursor);
    const page = await this.call('scroll', true, (client) =>
      client.scroll(this.collection, { offset, limit, with_payload: true, with_vector: true }),
    );
    const next = page.next_page_offset;
    return {
      points: page.points.map((record) => this.toMemoryPoint(record)),
      next: next === null || next === undefined ? null : encodeCursor(next as Schemas['ExtendedPointId']),
    };
  }

  /** Ids only, a page at a time, with readPage's cursors. */
  async readIds(cursor: string | null, limit: number): Promise<{ ids: string[]; next: string | null }> {
    const page = await this.scrollIds(cursor === null ? undefined : decodeCursor(cursor), limit);
    return { ids: page.ids, next: page.next === null ? null : encodeCursor(page.next) };
  }

  /**
   * Point ids that split the collection into `parts` ranges of about equal
   * size, as cursors (range i starts at key i-1 and ends before key i). uuid
   * ids are sampled by probing evenly spaced places in the uuid space (the
   * first id at or after each); integer ids by one id-only scan.
   */
  async splitKeys(parts: number): Promise<string[]> {
    if (parts <= 1) return [];
    const first = await this.scrollIds(undefined, 1);
    if (first.ids.length === 0) return [];
    let sample: string[];
    if (/^\d+$/.test(first.ids[0])) {
      sample = [];
      for (let offset: string | number | undefined; ; ) {
        const page = await this.scrollIds(offset, SPLIT_SCAN_PAGE);
        sample.push(...page.ids);
        if (page.next === null) break;
        offset = page.next;
      }
    } else {
      const probes = parts * SPLIT_PROBES_PER_PART;
      const found = new Set<string>();
      for (let i = 0; i < probes; i++) {
        const probe = BigInt(i) * (1n << 128n) / BigInt(probes);
        const hex = probe.toString(16).padStart(32, '0');
        const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
        const page = await this.scrollIds(uuid, 1);
        if (page.ids[0] !== undefined) found.add(page.ids[0]);
      }
      sample = [...found].sort(compareIds);
    }
    const keys: string[] = [];
    for (let i = 1; i < parts; i++) {
      const key = sample[Math.floor((i * sample.length) / parts)];
      if (key !== undefined && key !== sample[0] && key !== keys[keys.length - 1]) keys.push(key);
    }
    return keys.map((id) => encodeCursor(toQdrantId(id)));
  }

  /** The points of one range (see splitKeys) as a source of their own, with the same cursors. */
  range({ start, end }: CopyRange): PointSource {
    const to = end === null ? null : String(decodeCursor(end));
    const within = { index: 0, from: null, to };
    return {
      count: async () => {
        let n = 0;
        for (let offset: string | number | undefined = start === null ? undefined : decodeCursor(start); ; ) {
          const page = await this.scrollIds(offset, SPLIT_SCAN_PAGE);
          const inside = page.ids.filter((id) => beforeEnd(id, within));
          n += inside.length;
          if (inside.length < page.ids.length || page.next === null) return n;
          offset = page.next;
        }
      },
      readPage: async (cursor, limit) => {
        const page = await this.readPage(cursor ?? start, limit);
        const points = page.points.filter((p) => beforeEnd(p.id, within));
        const ended = points.length < page.points.length || page.next === null || !beforeEnd(String(decodeCursor(page.next)), within);
        return { points, next: ended ? null : page.next };
      },
      close: async () => {},
    };
  }

  /** The points with ids in `range`, in id order, a page at a time: one side of an exhaustive comparison. */
  async *streamIdRange(range: IdRange, pageSize: number): AsyncGenerator<MemoryPoint[]> {
    let cursor = range.from === null ? null : encodeCursor(toQdrantId(range.from));
    do {
      const page = await this.readPage(cursor, pageSize);
      const points = page.points.filter((p) => beforeEnd(p.id, range));
      if (points.length) yield points;
      cursor = points.length < page.points.length ? null : page.next;
    } while (cursor !== null);
  }

  private async scrollIds(offset: string | number | undefined, limit: number): Promise<{ ids: string[]; next: string | number | null }> {
    const page = await this.call('scroll', true, (client) =>
      client.scroll(this.collection, { offset, limit, with_payload: false, with_vector: false }),
    );
    const next = page.next_page_offset;
    return { ids: page.points.map((p) => String(p.id)), next: next === null || next === undefined ? null : (next as string | number) };
  }

  async upsert(points: MemoryPoint[]): Promise<void> {
    if (points.length === 0) return;
    const body = points.map((point) => this.toQdrantPoint(point));
    await this.call('upsert', true, (client) => client.upsert(this.collection, { wait: true, points: body }));
  }

  async retrieve(ids: string[]): Promise<MemoryPoint[]> {
    if (ids.length === 0) return [];
    const records = await this.call('retrieve', true, (client) =>
      client.retrieve(this.collection, { ids: ids.map(toQdrantId), with_payload: true, with_vector: true }),
    );
    return records.map((record) => this.toMemoryPoint(record));
  }

  async deletePoints(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.call('delete points', true, (client) => client.delete(this.collection, { wait: true, points: ids.map(toQdrantId) }));
  }

  /** Best matches first, as Qdrant scores them with the vector's distance (dot product for sparse). */
  async nearest(query: NearestQuery, limit: number): Promise<ScoredId[]> {
    const request =
      'dense' in query
        ? { query: query.dense, using: this.options.vectorName, limit }
        : { query: query.sparse, using: query.using, limit };
    const result = await this.call('query', true, (client) => client.query(this.collection, request));
    return result.points.map((point) => ({ id: String(point.id), score: point.score }));
  }

  /** Clients are shared per URL (see clientFor), so there is nothing to release here. */
  async close(): Promise<void> {}

  private call<T>(action: string, idempotent: boolean, fn: (client: QdrantClient) => Promise<T>): Promise<T> {
    return callQdrant({ url: this.url, action, collection: this.collection, idempotent }, fn);
  }

  private toQdrantPoint(point: MemoryPoint): Schemas['PointStruct'] {
    const sparse = point.sparse ?? {};
    const named = this.options.vectorName !== undefined || Object.keys(sparse).length > 0;
    const vector = named ? { [this.options.vectorName ?? DEFAULT_VECTOR]: point.vector, ...sparse } : point.vector;
    return { id: toQdrantId(point.id), payload: point.payload, vector };
  }

  private toMemoryPoint(record: Schemas['Record']): MemoryPoint {
    const id = String(record.id);
    const { dense, sparse } = splitVectors(record.vector, this.options.vectorName ?? DEFAULT_VECTOR);
    if (!dense) {
      const which = this.options.vectorName ? `dense vector '${this.options.vectorName}'` : 'unnamed dense vector';
      throw new QdrantError(`Qdrant point ${id} in '${this.collection}' at ${this.url} has no ${which}`, null, false);
    }
    const point: MemoryPoint = { id, vector: dense, payload: (record.payload ?? {}) as Record<string, unknown> };
    if (Object.keys(sparse).length > 0) point.sparse = sparse;
    return point;
  }
}

/** A point as a scan sees it: id, the selected payload fields and the selected named vectors. */
export interface ScannedPoint {
  id: string;
  payload: Record<string, unknown>;
  sparse: Record<string, SparseVector>;
}

/**
 * One scroll page that skips what a scan does not need (dense vectors, most
 * payload fields), for id-set diffs, per-user counts and coverage checks.
 * Cursors are the same as QdrantCollection.readPage's.
 */
export async function scanPage(
  url: string,
  collection: string,
  cursor: string | null,
  limit: number,
  select: { payload: string[] | true; vectors: string[] },
): Promise<{ points: ScannedPoint[]; next: string | null }> {
  const offset = cursor === null ? undefined : decodeCursor(cursor);
  const withVector = select.vectors.length > 0 ? select.vectors : false;
  const page = await callQdrant({ url, action: 'scroll', collection, idempotent: true }, (client) =>
    client.scroll(collection, { offset, limit, with_payload: select.payload, with_vector: withVector }),
  );
  const next = page.next_page_offset;
  return {
    points: page.points.map((record) => ({
      id: String(record.id),
      payload: (record.payload ?? {}) as Record<string, unknown>,
      sparse: splitVectors(record.vector, DEFAULT_VECTOR).sparse,
    })),
    next: next === null || next === undefined ? null : encodeCursor(next as Schemas['ExtendedPointId']),
  };
}

/** The server's version; proves it is reachable. */
export async function serverVersion(url: string): Promise<string> {
  const info = await callQdrant({ url, action: 'read version', idempotent: true }, (client) => client.versionInfo());
  return info.version;
}

export async function listCollections(url: string): Promise<string[]> {
  const result = await callQdrant({ url, action: 'list collections', idempotent: true }, (client) => client.getCollections());
  return result.collections.map((collection) => collection.name);
}

export function createCollection(url: string, name: string, spec: CollectionSpec): Promise<void> {
  const dense = { size: spec.size, distance: spec.distance };
  const vectors = spec.vectorName === undefined ? dense : { [spec.vectorName]: dense };
  const modifier = spec.sparseModifier ?? 'none';
  const sparseVectors = spec.sparse?.length ? Object.fromEntries(spec.sparse.map((sparseName) => [sparseName, { modifier }])) : undefined;
  // Not retried: a lost acknowledgement would turn the retry into "already exists".
  return callQdrant({ url, action: 'create collection', collection: name, idempotent: false }, async (client) => {
    await client.createCollection(name, { vectors, sparse_vectors: sparseVectors });
  });
}

export async function describeCollection(url: string, name: string): Promise<CollectionDescription> {
  const context = { url, action: 'describe collection', collection: name, idempotent: true };
  const info = await callQdrant(context, (client) => client.getCollection(name));
  const pointsCount = await callQdrant(context, async (client) => (await client.count(name, { exact: true })).count);
  const params = info.config.params;
  return {
    dense: denseVectors(params.vectors),
    sparse: Object.entries(params.sparse_vectors ?? {}).map(([sparseName, sparseParams]) => ({
      name: sparseName,
      modifier: sparseParams?.modifier === 'idf' ? 'idf' : 'none',
    })),
    pointsCount,
    payloadIndexes: Object.fromEntries(Object.entries(info.payload_schema).map(([field, schema]) => [field, String(schema?.data_type)])),
  };
}

/** True when a collection was deleted; false when none had that name (an alias's name included). */
export function deleteCollection(url: string, name: string): Promise<boolean> {
  return callQdrant({ url, action: 'delete collection', collection: name, idempotent: true }, (client) => client.deleteCollection(name));
}

export async function collectionExists(url: string, name: string): Promise<boolean> {
  const result = await callQdrant({ url, action: 'check collection', collection: name, idempotent: true }, (client) =>
    client.collectionExists(name),
  );
  return result.exists;
}

/** All aliases, or only those of one collection. */
export async function listAliases(url: string, collection?: string): Promise<AliasBinding[]> {
  const context = { url, action: 'list aliases', collection, idempotent: true };
  const result = await callQdrant(context, (client) => (collection === undefined ? client.getAliases() : client.getCollectionAliases(collection)));
  return result.aliases.map(({ alias_name: alias, collection_name: target }) => ({ alias, collection: target }));
}

/** Applies all actions atomically in one request (Qdrant's alias swap). */
export async function updateAliases(url: string, actions: AliasAction[]): Promise<void> {
  // create and delete can be repeated safely; a repeated rename would fail, so batches with one are not retried.
  const idempotent = actions.every((action) => action.op !== 'rename');
  await callQdrant({ url, action: 'update aliases', idempotent }, (client) =>
    client.updateCollectionAliases({ actions: actions.map(toQdrantAliasAction) }),
  );
}

export async function createPayloadIndex(url: string, collection: string, field: string, type: PayloadIndexType): Promise<void> {
  await callQdrant({ url, action: `create payload index on '${field}'`, collection, idempotent: true }, (client) =>
    client.createPayloadIndex(collection, { field_name: field, field_schema: type, wait: true }),
  );
}

export async function createSnapshot(url: string, collection: string): Promise<SnapshotInfo> {
  // Not retried: a retry after a lost acknowledgement would leave a second snapshot behind.
  const snapshot = await callQdrant({ url, action: 'create snapshot', collection, idempotent: false }, (client) =>
    client.createSnapshot(collection, { wait: true }),
  );
  if (!snapshot) throw new QdrantError(`Qdrant did not describe the snapshot of '${collection}' at ${url}`, null, false);
  return toSnapshotInfo(snapshot);
}

export async function listSnapshots(url: string, collection: string): Promise<SnapshotInfo[]> {
  const snapshots = await callQdrant({ url, action: 'list snapshots', collection, idempotent: true }, (client) =>
    client.listSnapshots(collection),
  );
  return snapshots.map(toSnapshotInfo);
}

/** Where Qdrant can fetch one of its own snapshots from when recovering. */
export function snapshotLocation(url: string, collection: string, snapshotName: string): string {
  return `${url.replace(/\/+$/, '')}/collections/${encodeURIComponent(collection)}/snapshots/${encodeURIComponent(snapshotName)}`;
}

/** Replaces the collection's content with the snapshot at `location` (see snapshotLocation). */
export async function recoverSnapshot(url: string, collection: string, location: string, checksum?: string): Promise<void> {
  // Qdrant downloads http(s) locations itself; a secured server needs the key for that too.
  const apiKey = /^https?:/.test(location) ? apiKeyFromEnvironment() : undefined;
  await callQdrant({ url, action: 'recover snapshot', collection, idempotent: true }, (client) =>
    client.recoverSnapshot(collection, { location, checksum, api_key: apiKey }),
  );
}

function toSnapshotInfo(snapshot: Schemas['SnapshotDescription']): SnapshotInfo {
  return { name: snapshot.name, createdAt: snapshot.creation_time ?? null, size: snapshot.size, checksum: snapshot.checksum ?? null };
}

function toQdrantAliasAction(action: AliasAction): Schemas['AliasOperations'] {
  switch (action.op) {
    case 'create':
      return { create_alias: { collection_name: action.collection, alias_name: action.alias } };
    case 'delete':
      return { delete_alias: { alias_name: action.alias } };
    case 'rename':
      return { rename_alias: { old_alias_name: action.from, new_alias_name: action.to } };
  }
}

function denseVectors(vectors: Schemas['VectorsConfig'] | undefined): CollectionDescription['dense'] {
  if (!vectors) return [];
  if (typeof vectors.size === 'number') return [{ name: null, size: vectors.size, distance: vectors.distance as Distance }];
  return Object.entries(vectors as Record<string, Schemas['VectorParams']>).map(([name, params]) => ({
    name,
    size: params.size,
    distance: params.distance,
  }));
}

/** A stored point's dense vector (by name, '' = unnamed) and its sparse vectors. */
function splitVectors(vector: Schemas['Record']['vector'], denseName: string): { dense?: number[]; sparse: Record<string, SparseVector> } {
  if (Array.isArray(vector)) return { dense: denseName === DEFAULT_VECTOR && isDense(vector) ? vector : undefined, sparse: {} };
  const sparse: Record<string, SparseVector> = {};
  let dense: number[] | undefined;
  for (const [name, value] of Object.entries(vector ?? {})) {
    if (name === denseName && isDense(value)) dense = value;
    else if (isSparse(value)) sparse[name] = { indices: value.indices, values: value.values };
  }
  return { dense, sparse };
}

function isDense(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((x) => typeof x === 'number');
}

function isSparse(value: unknown): value is SparseVector {
  return typeof value === 'object' && value !== null && Array.isArray((value as SparseVector).indices);
}

/** Integer ids travel as digit strings in MemoryPoint; Qdrant needs them back as numbers. */
function toQdrantId(id: string): string | number {
  return /^\d+$/.test(id) && Number.isSafeInteger(Number(id)) ? Number(id) : id;
}

function encodeCursor(offset: string | number): string {
  return JSON.stringify(offset);
}

function decodeCursor(cursor: string): string | number {
  let offset: unknown;
  try {
    offset = JSON.parse(cursor);
  } catch {
    offset = undefined;
  }
  if (typeof offset !== 'string' && typeof offset !== 'number') {
    throw new QdrantError(`'${cursor}' is not a Qdrant scroll cursor (expected a JSON-encoded point id)`, null, false);
  }
  return offset;
}

function apiKeyFromEnvironment(): string | undefined {
  return process.env.QDRANT_API_KEY || undefined;
}

const clients = new Map<string, QdrantClient>();

/**
 * One client per URL for the worker's lifetime, so connections are pooled
 * across activities. The URL must not carry credentials: they would end up in
 * workflow history.
 */
function clientFor(url: string): QdrantClient {
  const existing = clients.get(url);
  if (existing) return existing;
  const parsed = new URL(url);
  if (parsed.username || parsed.password) {
    throw new QdrantError(`Qdrant URL must not contain credentials; set QDRANT_API_KEY in the worker's environment instead`, null, false);
  }
  const prefix = parsed.pathname.replace(/\/+$/, '');
  const client = new QdrantRestClient({
    url: parsed.origin,
    prefix: prefix || undefined,
    apiKey: apiKeyFromEnvironment(),
    timeout: REQUEST_TIMEOUT_MS,
    // The version probe is an extra request at start-up and only warns.
    checkCompatibility: false,
  });
  clients.set(url, client);
  return client;
}

async function callQdrant<T>(context: CallContext, fn: (client: QdrantClient) => Promise<T>): Promise<T> {
  const client = clientFor(context.url);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(client);
    } catch (error) {
      const failure = describeFailure(error, context);
      if (!failure.retryable || !context.idempotent || attempt >= MAX_ATTEMPTS) throw failure;
      await sleep(backoff(attempt));
    }
  }
}

function backoff(attempt: number): number {
  const base = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Turns whatever the client threw into a QdrantError with a message an operator can act on. */
function describeFailure(error: unknown, { url, action, collection }: CallContext): QdrantError {
  if (error instanceof QdrantError) return error;
  const where = collection === undefined ? `at ${url}` : `on '${collection}' at ${url}`;
  const status = httpStatus(error);
  if (status !== null) {
    const detail = qdrantErrorMessage(error) ?? `HTTP ${status}`;
    if (status === 404 && collection !== undefined && /Collection .* doesn't exist/.test(detail)) {
      return new QdrantError(`Qdrant collection '${collection}' does not exist at ${url}`, status, false);
    }
    if (status === 401 || status === 403) {
      return new QdrantError(
        `Qdrant at ${url} refused ${action} (${status}: ${detail}); set QDRANT_API_KEY in the worker's environment to the server's API key`,
        status,
        false,
      );
    }
    const retryable = status >= 500 || status === 429;
    return new QdrantError(`Qdrant ${action} ${where} failed with ${status}: ${detail}`, status, retryable);
  }
  if (isTimeout(error)) {
    return new QdrantError(`Qdrant ${action} ${where} timed out after ${REQUEST_TIMEOUT_MS / 1000}s`, null, true);
  }
  const code = networkErrorCode(error);
  if (code !== null) {
    return new QdrantError(`Qdrant ${action} ${where} failed: connection error ${code}`, null, TRANSIENT_NETWORK_CODES.has(code));
  }
  return new QdrantError(`Qdrant ${action} ${where} failed: ${String(error)}`, null, false);
}

/** The HTTP status of a non-2xx answer (the client throws its ApiError, or a 429 error with retry_after). */
function httpStatus(error: unknown): number | null {
  if (error instanceof Error && error.name === 'QdrantClientResourceExhaustedError') return 429;
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : null;
}

/** Qdrant's own words from an error body: {"status": {"error": "..."}}. */
function qdrantErrorMessage(error: unknown): string | null {
  const data = (error as { data?: { status?: { error?: unknown } } }).data;
  const message = data?.status?.error;
  return typeof message === 'string' ? message : null;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'QdrantClientTimeoutError';
}

/** fetch reports network failures as TypeError('fetch failed') with the socket error as cause. */
function networkErrorCode(error: unknown): string | null {
  for (let current = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return null;
}
