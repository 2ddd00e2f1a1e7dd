/**
 * memorygraph's data as memshift moves it, whatever the store: a memory is a
 * `Memory` node's properties (keyed by its `id`), a relationship is its id,
 * type, the ids of its two memories and its properties (strength, counters,
 * bi-temporal fields…). Both travel through the copy engine as points with
 * no vector (`vector: []`), the graph fields in the payload.
 *
 * Properties are JSON values as memorygraph writes them: strings (timestamps
 * are ISO-8601 strings), numbers, booleans and lists. A property whose value
 * is null is absent, as Neo4j and FalkorDB store it.
 */
import { ApplicationFailure } from '@temporalio/common';
import { payloadFingerprint } from '../compare';
import type { MemoryPoint, Page, PointSource, PointTarget } from '../stores/contract';
import { compareIds } from '../stores/key-order';

export type Properties = Record<string, unknown>;

/** A memory point's payload. `row` holds the SQLite layout's own row timestamps, when it was read from one. */
export interface MemoryPayload {
  properties: Properties;
  row?: { created_at: string | null; updated_at: string | null };
}

export interface RelationshipPayload {
  type: string;
  from: string;
  to: string;
  properties: Properties;
  row?: { created_at: string | null };
}

export type Entity = 'memories' | 'relationships';

export interface GraphCounts {
  memories: number;
  relationships: number;
  relationshipsByType: Record<string, number>;
}

/**
 * One memorygraph store (SQLite file, Neo4j, FalkorDB, or a file's staging
 * store): read by id cursor, written idempotently by id (memory id and
 * relationship id), never by position.
 */
export interface GraphStore {
  /** Credential-free name for reports. */
  readonly name: string;
  counts(): Promise<GraphCounts>;
  read(entity: Entity, cursor: string | null, limit: number): Promise<Page>;
  /** Points by id, in any order; absent ids are missing from the result. */
  retrieve(entity: Entity, ids: string[]): Promise<MemoryPoint[]>;
  /** Idempotent: writing the same ids again leaves one of each. Relationships need both memories present. */
  upsert(entity: Entity, points: MemoryPoint[]): Promise<void>;
  remove(entity: Entity, ids: string[]): Promise<void>;
  /** Ids of relationships whose memory at either end is missing (at most `limit`). */
  dangling(limit: number): Promise<string[]>;
  /** The point as this store keeps and returns it (e.g. without another store's row timestamps). */
  shape(entity: Entity, point: MemoryPoint): MemoryPoint;
  close(): Promise<void>;
}

const PLAIN_TYPE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A relationship type that can be written into Cypher as a label (it is backtick-quoted too): memorygraph's 35, or any other plain identifier. */
export function assertRelationshipType(type: string, id: string): string {
  if (!PLAIN_TYPE.test(type)) {
    throw ApplicationFailure.nonRetryable(`Relationship ${id} has a type that is not a plain identifier; memshift will not write it as a graph relationship type.`, 'BadRelationshipType');
  }
  return type;
}

/** memorygraph's integer-valued properties; every other number is a float (Python's float fields). */
const INTEGER_PROPERTIES = new Set(['usage_count', 'evidence_count', 'validation_count', 'counter_evidence_count', 'version']);
export const isIntegerProperty = (key: string, value: number) => INTEGER_PROPERTIES.has(key) && Number.isInteger(value);

/** Drops null-valued properties: graph stores cannot hold them, and memorygraph reads absent as null. */
export function withoutNulls(properties: Properties): Properties {
  return Object.fromEntries(Object.entries(properties).filter(([, v]) => v !== null && v !== undefined));
}

export function memoryPoint(properties: Properties, row?: MemoryPayload['row']): MemoryPoint {
  const payload: MemoryPayload = { properties: withoutNulls(properties) };
  if (row) payload.row = row;
  return { id: String(properties.id), vector: [], payload: payload as unknown as Record<string, unknown> };
}

export function relationshipPoint(id: string, type: string, from: string, to: string, properties: Properties, row?: RelationshipPayload['row']): MemoryPoint {
  const payload: RelationshipPayload = { type, from, to, properties: withoutNulls({ ...properties, id }) };
  if (row) payload.row = row;
  return { id, vector: [], payload: payload as unknown as Record<string, unknown> };
}

export const asMemory = (point: MemoryPoint) => point.payload as unknown as MemoryPayload;
export const asRelationship = (point: MemoryPoint) => point.payload as unknown as RelationshipPayload;

/** A point without the SQLite row timestamps: what every store holds alike. */
export function withoutRow(point: MemoryPoint): MemoryPoint {
  if (!('row' in point.payload)) return point;
  const { row: _row, ...payload } = point.payload;
  return { ...point, payload };
}

/** The store-independent fingerprint validation compares: properties, and for relationships type and ends. */
export const fingerprintOf = (point: MemoryPoint) => payloadFingerprint(withoutRow(point).payload);

/** The copy engine's view of one entity of a store. */
export function pointsOf(store: GraphStore, entity: Entity): PointSource & PointTarget {
  return {
    count: async () => (await store.counts())[entity],
    readPage: (cursor, limit) => store.read(entity, cursor, limit),
    upsert: (points) => store.upsert(entity, points),
    retrieve: (ids) => store.retrieve(entity, ids),
    close: async () => {},
  };
}

/** Every page of one entity, in id order. */
export async function* scan(store: GraphStore, entity: Entity, pageSize: number, onPage?: () => void): AsyncGenerator<MemoryPoint[]> {
  let cursor: string | null = null;
  do {
    const page = await store.read(entity, cursor, pageSize);
    onPage?.();
    yield page.points;
    cursor = page.next;
  } while (cursor !== null);
}

/** Ids → fingerprints of one entity: what validation, catch-up and rollback diff (ids and digests only). */
export async function fingerprints(store: GraphStore, entity: Entity, pageSize: number, onPage?: () => void): Promise<Map<string, string>> {
  const prints = new Map<string, string>();
  for await (const page of scan(store, entity, pageSize, onPage)) for (const p of page) prints.set(p.id, fingerprintOf(p));
  return prints;
}

/** Next cursor of a page of memories read by `id > cursor ORDER BY id LIMIT limit`. */
export function pageOf(points: MemoryPoint[], limit: number): Page {
  return { points, next: points.length < limit ? null : points[points.length - 1].id };
}

/**
 * Relationships are read in (start memory id, relationship id) order: graph
 * stores then page through the Memory.id index memorygraph already has,
 * instead of sorting every edge by its id for each page. A cursor is the
 * last relationship read, or (`id` null) the last memory whose
 * relationships were all read.
 */
export interface EdgeCursor {
  from: string;
  id: string | null;
}

/** A copy heartbeated before relationships were read this way holds a bare relationship id: it starts over (writes are idempotent by id). */
export const edgeCursorOf = (cursor: string | null): EdgeCursor => (cursor?.startsWith('{') ? (JSON.parse(cursor) as EdgeCursor) : { from: '', id: null });

const edgeCursor = (cursor: EdgeCursor) => JSON.stringify(cursor);

/**
 * A page of relationships read in (from, id) order, at most `limit`. `windowEnd`:
 * the last memory whose relationships the read considered, when it stopped
 * short of the store's end (graph stores read a window of memories at a time).
 */
export function edgePageOf(points: MemoryPoint[], limit: number, windowEnd: string | null = null): Page {
  const last = points[points.length - 1];
  if (points.length === limit) return { points, next: edgeCursor({ from: asRelationship(last).from, id: last.id }) };
  return { points, next: windowEnd === null ? null : edgeCursor({ from: windowEnd, id: null }) };
}

/** The key a point is merged by, in the order stores read: compareIds' string order for memory ids, (from, id) for relationships. */
function mergeKey(entity: Entity, point: MemoryPoint): string {
  return entity === 'memories' ? `\u0000${point.id}` : `${asRelationship(point).from}\u0000${point.id}`;
}

/** The id a merged point had in its store (properties carry it). */
export const idOf = (point: MemoryPoint) => String((point.payload as { properties: Properties }).properties.id);

/**
 * Every page of one entity as activities/validation.ts' merge wants it:
 * points keyed in read order, without SQLite row timestamps. A store whose
 * order differs from the merge's (ids outside memorygraph's uuids, compared
 * differently by the store) is refused rather than misreported.
 */
export async function* inMergeOrder(store: GraphStore, entity: Entity, pageSize: number, onPage?: () => void): AsyncGenerator<MemoryPoint[]> {
  let previous: string | null = null;
  for await (const page of scan(store, entity, pageSize, onPage)) {
    const keyed = page.map((p) => ({ ...withoutRow(p), id: mergeKey(entity, p) }));
    for (const point of keyed) {
      if (previous !== null && compareIds(previous, point.id) >= 0) {
        throw ApplicationFailure.nonRetryable(`${store.name} returned ${entity} ${idOf(point)} out of the order memshift compares in; its ids sort differently in the store than in memshift. Nothing was changed.`, 'UnorderedIds');
      }
      previous = point.id;
    }
    yield keyed;
  }
}

/**
 * A live service may add a memory after the memories' copy has passed its id
 * and link it before the relationships' copy reads the link: a graph target
 * cannot hold that relationship until its ends are there, so the missing ends
 * are copied first (the catch-up would bring them anyway, and they count as
 * this run's writes). A relationship whose end the source no longer holds was
 * removed with it meanwhile: it is left to the catch-up, not written.
 */
export async function withEndsInTarget(source: GraphStore, target: GraphStore, relationships: MemoryPoint[]): Promise<MemoryPoint[]> {
  const endsOf = (point: MemoryPoint) => [asRelationship(point).from, asRelationship(point).to];
  const ends = [...new Set(relationships.flatMap(endsOf))];
  const held = new Set((await target.retrieve('memories', ends)).map((memory) => memory.id));
  const missing = ends.filter((id) => !held.has(id));
  if (missing.length === 0) return relationships;
  const found = (await source.retrieve('memories', missing)).map((memory) => target.shape('memories', memory));
  await target.upsert('memories', found);
  found.forEach((memory) => held.add(memory.id));
  return relationships.filter((point) => endsOf(point).every((id) => held.has(id)));
}
