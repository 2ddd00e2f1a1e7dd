/**
 * Point ids and vectors as real Qdrant parses, stores and prints them.
 */
import { formatError, wrongInput } from './errors';

/** An unsigned integer, or a uuid in canonical form (lowercase, hyphenated). */
export type PointId = number | string;

export interface SparseVector {
  indices: number[];
  values: number[];
}

export type StoredVector = number[] | SparseVector;

/** Vectors by name; '' is the unnamed (default) dense vector, as in Qdrant. */
export type NamedVectors = Record<string, StoredVector>;

export interface StoredPoint {
  id: PointId;
  payload: Record<string, unknown>;
  vectors: NamedVectors;
  /** Id of the operation that last wrote the point, as Qdrant reports it in scored points. */
  version: number;
}

export const DEFAULT_VECTOR = '';

const HYPHENATED_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SIMPLE_UUID = /^[0-9a-f]{32}$/i;

export function parsePointId(raw: unknown): PointId {
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
  if (typeof raw === 'string' && HYPHENATED_UUID.test(raw)) return raw.toLowerCase();
  if (typeof raw === 'string' && SIMPLE_UUID.test(raw)) {
    const hex = raw.toLowerCase();
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  throw formatError(`value ${JSON.stringify(raw)} is not a valid point ID, valid values are either an unsigned integer or a UUID`);
}

/**
 * Qdrant's point order: integer ids first (numerically), then uuids by their
 * bytes, which for canonical lowercase hex strings is plain string order.
 */
export function compareIds(a: PointId, b: PointId): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function isSparse(vector: StoredVector): vector is SparseVector {
  return !Array.isArray(vector);
}

export function parseDenseVector(raw: unknown, name: string): number[] {
  if (!Array.isArray(raw) || !raw.every((x) => typeof x === 'number')) {
    throw formatError(`vector ${JSON.stringify(name)} must be an array of numbers`);
  }
  return [...raw];
}

export function parseSparseVector(raw: unknown, name: string): SparseVector {
  const candidate = raw as Partial<SparseVector> | null;
  const indices = candidate?.indices;
  const values = candidate?.values;
  if (!Array.isArray(indices) || !Array.isArray(values)) {
    throw formatError(`sparse vector ${JSON.stringify(name)} needs "indices" and "values" arrays`);
  }
  if (indices.length !== values.length) {
    throw wrongInput(`Sparse vector indices and values must have the same length, got ${indices.length} and ${values.length}`);
  }
  if (new Set(indices).size !== indices.length) {
    throw wrongInput('Sparse vector indices must be unique');
  }
  return sortedByIndex(indices, values);
}

/** Qdrant keeps sparse vectors sorted by index and returns them that way, values moved along. */
function sortedByIndex(indices: number[], values: number[]): SparseVector {
  const order = indices.map((_, i) => i).sort((a, b) => indices[a] - indices[b]);
  return { indices: order.map((i) => indices[i]), values: order.map((i) => values[i]) };
}

/**
 * What a client wrote as `vector`: a bare array is the default vector; an
 * object maps names ('' included) to dense arrays or sparse {indices, values}.
 */
export function parseVectorStruct(raw: unknown): NamedVectors {
  if (raw === undefined || raw === null) return {};
  if (Array.isArray(raw)) return { [DEFAULT_VECTOR]: parseDenseVector(raw, DEFAULT_VECTOR) };
  if (typeof raw !== 'object') throw formatError('"vector" must be an array or an object of named vectors');
  const vectors: NamedVectors = {};
  for (const [name, value] of Object.entries(raw)) {
    vectors[name] = Array.isArray(value) ? parseDenseVector(value, name) : parseSparseVector(value, name);
  }
  return vectors;
}

/**
 * How Qdrant prints a point's vectors: only the default dense vector → a bare
 * array; anything else → a map by name (with '' for the default one).
 */
export function vectorStructOutput(vectors: NamedVectors): number[] | NamedVectors {
  const names = Object.keys(vectors);
  if (names.length === 1 && names[0] === DEFAULT_VECTOR) return [...(vectors[DEFAULT_VECTOR] as number[])];
  return structuredClone(vectors);
}
