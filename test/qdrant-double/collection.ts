/**
 * One in-memory collection: its config as created, its points, payload
 * indexes, and the reads and writes Qdrant does on them.
 */
import { notSupported, wrongInput, formatError } from './errors';
import { matchesFilter, valuesAt } from './filter';
import {
  compareIds,
  DEFAULT_VECTOR,
  isSparse,
  parseDenseVector,
  parseSparseVector,
  type NamedVectors,
  type PointId,
  type SparseVector,
  type StoredPoint,
} from './points';

export type Distance = 'Cosine' | 'Euclid' | 'Dot' | 'Manhattan';
const DISTANCES: readonly Distance[] = ['Cosine', 'Euclid', 'Dot', 'Manhattan'];

export interface DenseParams {
  size: number;
  distance: Distance;
  [option: string]: unknown;
}

export interface SparseParams {
  modifier?: 'idf' | 'none';
  [option: string]: unknown;
}

/** `vectors` exactly as given at creation: one unnamed {size, distance} or a map by name. */
export interface CollectionConfig {
  vectors: DenseParams | Record<string, DenseParams>;
  sparse_vectors?: Record<string, SparseParams>;
}

export interface PayloadIndex {
  data_type: string;
  params?: Record<string, unknown>;
}

export interface ScoredPoint {
  point: StoredPoint;
  score: number;
}

export function parseCollectionConfig(body: Record<string, unknown>): CollectionConfig {
  const vectors = (body.vectors ?? {}) as CollectionConfig['vectors'];
  if (typeof vectors !== 'object') throw formatError('"vectors" must be an object');
  const dense = isUnnamed(vectors) ? [vectors] : Object.values(vectors);
  for (const params of dense) validateDenseParams(params);
  const config: CollectionConfig = { vectors: structuredClone(vectors) };
  if (body.sparse_vectors !== undefined) config.sparse_vectors = structuredClone(body.sparse_vectors as Record<string, SparseParams>);
  return config;
}

function isUnnamed(vectors: CollectionConfig['vectors']): vectors is DenseParams {
  return typeof (vectors as DenseParams).size === 'number';
}

function validateDenseParams(params: DenseParams): void {
  if (!Number.isInteger(params?.size) || params.size < 1) throw wrongInput('Validation error in JSON body: [vectors.size: value must be at least 1]');
  if (!DISTANCES.includes(params.distance)) {
    throw formatError(`unknown variant \`${String(params.distance)}\`, expected one of ${DISTANCES.map((d) => `\`${d}\``).join(', ')}`);
  }
}

export class Collection {
  private readonly points = new Map<PointId, StoredPoint>();
  /** Ids in Qdrant order; rebuilt lazily after writes so long scrolls stay cheap. */
  private sortedIds: PointId[] | null = null;
  private readonly payloadIndexes: Record<string, PayloadIndex> = {};
  private lastOperationId = 0;

  constructor(readonly config: CollectionConfig) {}

  get size(): number {
    return this.points.size;
  }

  denseParams(name: string): DenseParams | undefined {
    const vectors = this.config.vectors;
    if (isUnnamed(vectors)) return name === DEFAULT_VECTOR ? vectors : undefined;
    return Object.hasOwn(vectors, name) ? vectors[name] : undefined;
  }

  sparseParams(name: string): SparseParams | undefined {
    const sparse = this.config.sparse_vectors ?? {};
    return Object.hasOwn(sparse, name) ? sparse[name] : undefined;
  }

  /** Validates every point before writing any, so a rejected batch writes nothing. Returns the operation id. */
  upsert(points: Omit<StoredPoint, 'version'>[]): number {
    const version = this.nextOperationId();
    const checked = points.map((point) => ({ ...point, vectors: this.checkVectors(point.vectors), version }));
    for (const point of checked) {
      if (!this.points.has(point.id)) this.sortedIds = null;
      this.points.set(point.id, point);
    }
    return version;
  }

  private checkVectors(vectors: NamedVectors): NamedVectors {
    const checked: NamedVectors = {};
    for (const [name, vector] of Object.entries(vectors)) {
      const dense = this.denseParams(name);
      if (dense && !isSparse(vector)) checked[name] = this.checkDense(vector, dense);
      else if (this.sparseParams(name) && isSparse(vector)) checked[name] = vector;
      else throw wrongInput(`Not existing vector name error: ${name}`);
    }
    return checked;
  }

  private checkDense(vector: number[], params: DenseParams): number[] {
    if (vector.length !== params.size) {
      throw wrongInput(`Vector dimension error: expected dim: ${params.size}, got ${vector.length}`);
    }
    // Qdrant stores cosine vectors normalised, and returns them that way.
    return params.distance === 'Cosine' ? normalize(vector) : vector;
  }

  get(id: PointId): StoredPoint | undefined {
    return this.points.get(id);
  }

  delete(ids: PointId[]): number {
    for (const id of ids) {
      if (this.points.delete(id)) this.sortedIds = null;
    }
    return this.nextOperationId();
  }

  createPayloadIndex(field: string, index: PayloadIndex): number {
    this.payloadIndexes[field] = index;
    return this.nextOperationId();
  }

  /** Indexed fields as Qdrant's collection info shows them, with how many points carry each. */
  payloadSchema(): Record<string, PayloadIndex & { points: number }> {
    const schema: Record<string, PayloadIndex & { points: number }> = {};
    for (const [field, index] of Object.entries(this.payloadIndexes)) {
      const points = [...this.points.values()].filter((point) => valuesAt(point.payload, field).length > 0).length;
      schema[field] = { ...structuredClone(index), points };
    }
    return schema;
  }

  private nextOperationId(): number {
    return ++this.lastOperationId;
  }

  matching(filter: unknown): StoredPoint[] {
    return this.idsInOrder()
      .map((id) => this.points.get(id)!)
      .filter((point) => matchesFilter(point, filter));
  }

  /**
   * One scroll page from `offset` (inclusive) in id order. The next offset is
   * the id of the first point not returned, so resuming neither skips nor
   * repeats points, whatever was written in between.
   */
  scroll(offset: PointId | undefined, limit: number, filter: unknown): { points: StoredPoint[]; next: PointId | null } {
    const ids = this.idsInOrder();
    const page: StoredPoint[] = [];
    for (let i = offset === undefined ? 0 : firstIndexAtOrAfter(ids, offset); i < ids.length; i++) {
      const point = this.points.get(ids[i])!;
      if (!matchesFilter(point, filter)) continue;
      if (page.length === limit) return { points: page, next: point.id };
      page.push(point);
    }
    return { points: page, next: null };
  }

  private idsInOrder(): PointId[] {
    this.sortedIds ??= [...this.points.keys()].sort(compareIds);
    return this.sortedIds;
  }

  /** Points scored against a dense query with the vector's distance, best first. */
  scoreDense(query: number[], using: string, filter: unknown): ScoredPoint[] {
    const params = this.denseParams(using);
    if (!params) throw wrongInput(`Not existing vector name error: ${using}`);
    const probe = this.checkDense(parseDenseVector(query, using), params);
    const scored = this.matching(filter)
      .filter((point) => point.vectors[using] !== undefined)
      .map((point) => ({ point, score: denseScore(params.distance, probe, point.vectors[using] as number[]) }));
    const smallerIsBetter = params.distance === 'Euclid' || params.distance === 'Manhattan';
    return scored.sort((a, b) => (smallerIsBetter ? a.score - b.score : b.score - a.score));
  }

  /**
   * Sparse scoring as Qdrant does it: dot product over shared indices (with
   * the IDF weight when the vector has `modifier: idf`); points sharing no
   * index with the query are not results.
   */
  scoreSparse(query: unknown, using: string, filter: unknown): ScoredPoint[] {
    const params = this.sparseParams(using);
    if (!params) throw wrongInput(`Not existing vector name error: ${using}`);
    const probe = parseSparseVector(query, using);
    const candidates = this.matching(filter).filter((point) => point.vectors[using] !== undefined);
    const weight = params.modifier === 'idf' ? idfWeights(this.allWithVector(using), using) : () => 1;
    return candidates
      .flatMap((point) => {
        const score = sparseDot(probe, point.vectors[using] as SparseVector, weight);
        return score === null ? [] : [{ point, score }];
      })
      .sort((a, b) => b.score - a.score);
  }

  private allWithVector(name: string): StoredPoint[] {
    return [...this.points.values()].filter((point) => point.vectors[name] !== undefined);
  }

  /**
   * A copy for snapshots: later writes to either side do not leak. Points are
   * replaced on write and never changed in place, so the copy shares them —
   * a snapshot of 200k 768-dim points costs a map, not a deep clone.
   */
  clone(): Collection {
    const copy = new Collection(structuredClone(this.config));
    for (const point of this.points.values()) copy.points.set(point.id, point);
    Object.assign(copy.payloadIndexes, structuredClone(this.payloadIndexes));
    copy.lastOperationId = this.lastOperationId;
    return copy;
  }
}

function firstIndexAtOrAfter(ids: PointId[], offset: PointId): number {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (compareIds(ids[mid], offset) < 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

function normalize(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

function denseScore(distance: Distance, a: number[], b: number[]): number {
  switch (distance) {
    case 'Cosine':
    case 'Dot':
      return a.reduce((sum, x, i) => sum + x * b[i], 0);
    case 'Euclid':
      return Math.sqrt(a.reduce((sum, x, i) => sum + (x - b[i]) ** 2, 0));
    case 'Manhattan':
      return a.reduce((sum, x, i) => sum + Math.abs(x - b[i]), 0);
  }
}

function sparseDot(query: SparseVector, stored: SparseVector, weight: (index: number) => number): number | null {
  const storedValues = new Map(stored.indices.map((index, i) => [index, stored.values[i]]));
  let score: number | null = null;
  query.indices.forEach((index, i) => {
    const value = storedValues.get(index);
    if (value !== undefined) score = (score ?? 0) + query.values[i] * value * weight(index);
  });
  return score;
}

/** Qdrant's IDF: ln(1 + (N - n + 0.5) / (n + 0.5)) over points that have the vector. */
function idfWeights(points: StoredPoint[], name: string): (index: number) => number {
  const documentFrequency = new Map<number, number>();
  for (const point of points) {
    for (const index of (point.vectors[name] as SparseVector).indices) {
      documentFrequency.set(index, (documentFrequency.get(index) ?? 0) + 1);
    }
  }
  return (index) => {
    const n = documentFrequency.get(index) ?? 0;
    return Math.log(1 + (points.length - n + 0.5) / (n + 0.5));
  };
}

/** Payload index schemas as Qdrant reports them (`"keyword"` or `{type: "keyword", …}`). */
export function parsePayloadIndex(fieldSchema: unknown): PayloadIndex {
  if (typeof fieldSchema === 'string') return { data_type: fieldSchema };
  if (fieldSchema && typeof fieldSchema === 'object' && typeof (fieldSchema as { type?: unknown }).type === 'string') {
    const { type, ...params } = fieldSchema as { type: string };
    return { data_type: type, params };
  }
  throw notSupported(`field_schema ${JSON.stringify(fieldSchema)}`);
}
