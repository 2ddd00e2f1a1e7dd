/**
 * The one small contract every store adapter speaks, so the resumable copy
 * (activities/copy-engine.ts) and validation are written once.
 *
 * A point is what moves: a stable id, a dense vector, a flat JSON payload and,
 * for Qdrant targets that want it, named sparse vectors (mem0's `bm25`).
 * Points live only inside activities; workflows see counts and cursors.
 */
export interface SparseVector {
  indices: number[];
  values: number[];
}

export interface MemoryPoint {
  /** UUID string (Qdrant and pgvector both key on it). */
  id: string;
  vector: number[];
  payload: Record<string, unknown>;
  sparse?: Record<string, SparseVector>;
}

/**
 * A point as one side of an exhaustive comparison streams it when both sides
 * can: a digest of the bytes the target stores for it
 * (stores/pgvector-digest.ts). `at` is where the source reads it whole again
 * (its row id) should the digests differ.
 */
export interface DigestedPoint {
  id: string;
  digest: string;
  at?: number;
}

/** One page read by a stable cursor: `next` is null when the source is exhausted. */
export interface Page {
  points: MemoryPoint[];
  next: string | null;
}

export interface PointSource {
  /** Exact number of points the copy will read. */
  count(): Promise<number>;
  /**
   * The page that `cursor` names (null = from the start), in cursor order, and
   * the cursor of the page after it. Cursors are opaque strings that only the
   * source interprets (a primary key, a point id), never row offsets, so a
   * resumed copy neither skips nor repeats rows inserted meanwhile.
   */
  readPage(cursor: string | null, limit: number): Promise<Page>;
  close(): Promise<void>;
}

export interface PointTarget {
  /** Idempotent: writing the same ids twice leaves one copy of each. */
  upsert(points: MemoryPoint[]): Promise<void>;
  count(): Promise<number>;
  /** Points by id; ids that are absent are simply missing from the result. */
  retrieve(ids: string[]): Promise<MemoryPoint[]>;
  close(): Promise<void>;
}

/** Counting by one payload value, for per-user parity (`metadata.user_id`). */
export interface CountsByPayload {
  /** How many points hold each of `values` at payload `path` (dot-separated); a value no point holds may be absent. */
  countsMatching(path: string, values: string[]): Promise<Map<string, number>>;
}
