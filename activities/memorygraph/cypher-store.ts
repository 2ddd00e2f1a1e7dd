/**
 * memorygraph's graph model, shared by its Neo4j and FalkorDB backends:
 * `(:Memory {id, …})` nodes and typed relationships carrying `id`, strength,
 * counters and bi-temporal fields. One class speaks it over either driver:
 * reads memories by `id > $cursor ORDER BY id LIMIT n` and relationships by
 * start memory then id (graph-store.ts' EdgeCursor), writes by batched
 * `UNWIND … MERGE` on the memory id and on the relationship id (one query per
 * relationship type), `SET = props` so the stored properties are exactly the
 * source's. Re-running a batch therefore never duplicates a node or an edge.
 */
import type { MemoryPoint, Page } from '../stores/contract';
import {
  assertRelationshipType,
  asMemory,
  asRelationship,
  edgeCursorOf,
  edgePageOf,
  memoryPoint,
  relationshipPoint,
  withoutRow,
  type Entity,
  type GraphCounts,
  type GraphStore,
  type Properties,
} from './graph-store';

export type Row = Record<string, unknown>;

/** Runs one Cypher statement with parameters; rows come back as plain JS values (properties(x) as objects). */
export interface CypherSession {
  read(query: string, params: Row): Promise<Row[]>;
  write(query: string, params: Row): Promise<Row[]>;
  close(): Promise<void>;
}

const MEMORY_FIELDS = 'm.id AS id, properties(m) AS p';
const EDGE_FIELDS = 'r.id AS id, type(r) AS type, a.id AS from, b.id AS to, properties(r) AS p';

/** Relationship ids this store read or wrote recently, with their start memory: retrieving them starts from the Memory.id index, not a scan of every edge. */
const REMEMBERED_EDGES = 100_000;
/** Memory ids read at once for paging (ids only, a few hundred kB). */
const WINDOW = 20_000;

export class CypherGraphStore implements GraphStore {
  private readonly startOf = new Map<string, string>();
  /** Memory ids after `after`, in id order, as last read (see memoryIdsAfter); `complete` when they run to the end. */
  private window: { after: string; ids: string[]; complete: boolean } | null = null;

  constructor(
    readonly name: string,
    private readonly session: CypherSession,
  ) {}

  async counts(): Promise<GraphCounts> {
    const [memories] = await this.session.read('MATCH (m:Memory) RETURN count(m) AS n', {});
    const byType = await this.session.read('MATCH (:Memory)-[r]->(:Memory) RETURN type(r) AS type, count(r) AS n ORDER BY type', {});
    return {
      memories: Number(memories?.n ?? 0),
      relationships: byType.reduce((sum, t) => sum + Number(t.n), 0),
      relationshipsByType: Object.fromEntries(byType.map((t) => [String(t.type), Number(t.n)])),
    };
  }

  async read(entity: Entity, cursor: string | null, limit: number): Promise<Page> {
    if (entity === 'memories') {
      const ids = await this.memoryIdsAfter(cursor ?? '', limit);
      const rows = ids.length ? await this.session.read(`UNWIND $ids AS wanted MATCH (m:Memory {id: wanted}) RETURN ${MEMORY_FIELDS}`, { ids }) : [];
      const byId = new Map(rows.map((row) => [String(row.id), toMemory(row)]));
      // A memory deleted since the window was read is skipped; the page still ends where the window does.
      const points = ids.map((id) => byId.get(id)).filter((p): p is MemoryPoint => !!p);
      return { points, next: ids.length < limit ? null : ids[ids.length - 1] };
    }
    // The cursor's memory (the rest of its relationships) and the memories after it, then their relationships: no scan of every edge per page.
    const after = edgeCursorOf(cursor);
    const next = await this.memoryIdsAfter(after.from, limit);
    const ids = after.id === null ? next : [after.from, ...next];
    const rows = ids.length
      ? await this.session.read(
          `UNWIND $ids AS start MATCH (a:Memory {id: start})-[r]->(b:Memory) WHERE a.id > $from OR r.id > $after
           RETURN ${EDGE_FIELDS} ORDER BY a.id, r.id LIMIT $limit`,
          { ids, from: after.from, after: after.id ?? '', limit },
        )
      : [];
    const points = rows.map(toRelationship);
    this.remember(points);
    return edgePageOf(points, limit, next.length === limit ? next[next.length - 1] : null);
  }

  /**
   * Up to `count` memory ids after `cursor`, in id order, from a window of
   * WINDOW ids read at once: FalkorDB answers `ORDER BY m.id LIMIT n` by
   * sorting every id after the cursor (1 s at 100k on a loaded machine), so
   * it is asked once per window, not once per page. The window holds ids only.
   */
  private async memoryIdsAfter(cursor: string, count: number): Promise<string[]> {
    let window = this.window;
    const within = window && cursor >= window.after && (window.complete || (window.ids.length > 0 && cursor < window.ids[window.ids.length - 1]));
    if (!within) {
      const rows = await this.session.read('MATCH (m:Memory) WHERE m.id > $cursor RETURN m.id AS id ORDER BY m.id LIMIT $limit', { cursor, limit: WINDOW });
      window = this.window = { after: cursor, ids: rows.map((r) => String(r.id)), complete: rows.length < WINDOW };
    }
    const { ids } = window!;
    let [start, hi] = [0, ids.length];
    while (start < hi) {
      const mid = (start + hi) >> 1;
      if (ids[mid] <= cursor) start = mid + 1;
      else hi = mid;
    }
    const taken = ids.slice(start, start + count);
    // Short of `count` before the window's end: read on past it.
    if (taken.length < count && !window!.complete) return [...taken, ...(await this.memoryIdsAfter(taken.length ? taken[taken.length - 1] : cursor, count - taken.length))];
    return taken;
  }

  /** Start memories of relationships read or written, so that retrieving them by id starts from the Memory.id index. */
  private remember(points: MemoryPoint[]): void {
    for (const point of points) {
      if (this.startOf.size >= REMEMBERED_EDGES) this.startOf.clear();
      this.startOf.set(point.id, asRelationship(point).from);
    }
  }

  async retrieve(entity: Entity, ids: string[]): Promise<MemoryPoint[]> {
    if (ids.length === 0) return [];
    if (entity === 'memories') {
      const rows = await this.session.read(`UNWIND $ids AS wanted MATCH (m:Memory {id: wanted}) RETURN ${MEMORY_FIELDS}`, { ids });
      return rows.map(toMemory);
    }
    const anchored = ids.filter((id) => this.startOf.has(id)).map((id) => ({ id, from: this.startOf.get(id) }));
    const unknown = ids.filter((id) => !this.startOf.has(id));
    const rows = [
      ...(anchored.length
        ? await this.session.read(`UNWIND $rows AS row MATCH (a:Memory {id: row.from})-[r]->(b:Memory) WHERE r.id = row.id RETURN ${EDGE_FIELDS}`, { rows: anchored })
        : []),
      ...(unknown.length ? await this.session.read(`MATCH (a:Memory)-[r]->(b:Memory) WHERE r.id IN $ids RETURN ${EDGE_FIELDS}`, { ids: unknown }) : []),
    ];
    return rows.map(toRelationship);
  }

  /** Graph stores keep no SQLite row timestamps. */
  shape(_entity: Entity, point: MemoryPoint): MemoryPoint {
    return withoutRow(point);
  }

  async upsert(entity: Entity, points: MemoryPoint[]): Promise<void> {
    if (points.length === 0) return;
    if (entity === 'memories') {
      this.window = null;
      const rows = points.map((p) => ({ id: p.id, props: asMemory(p).properties }));
      await this.session.write('UNWIND $rows AS row MERGE (m:Memory {id: row.id}) SET m = row.props', { rows });
      return;
    }
    const byType = new Map<string, Row[]>();
    for (const point of points) {
      const { type, from, to, properties } = asRelationship(point);
      const rows = byType.get(assertRelationshipType(type, point.id)) ?? [];
      rows.push({ id: point.id, from, to, props: properties });
      byType.set(type, rows);
    }
    this.remember(points);
    for (const [type, rows] of byType) {
      await this.session.write(
        `UNWIND $rows AS row MATCH (a:Memory {id: row.from}) MATCH (b:Memory {id: row.to})
         MERGE (a)-[r:\`${type}\` {id: row.id}]->(b) SET r = row.props`,
        { rows },
      );
    }
  }

  /** Relationships by id; memories by id, and only once no relationship touches them (nothing else is ever deleted with them). */
  async remove(entity: Entity, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    if (entity === 'relationships') {
      await this.session.write('MATCH ()-[r]->() WHERE r.id IN $ids DELETE r', { ids });
      return;
    }
    this.window = null;
    await this.session.write('UNWIND $ids AS gone MATCH (m:Memory {id: gone}) WHERE NOT (m)--() DELETE m', { ids });
  }

  /** Graph stores cannot hold an edge without both ends; edges without an id are what they can hold wrongly. */
  async dangling(limit: number): Promise<string[]> {
    const rows = await this.session.read(
      `MATCH (a)-[r]->(b) WHERE r.id IS NULL OR NOT a:Memory OR NOT b:Memory RETURN coalesce(r.id, '(no id)') AS id LIMIT $limit`,
      { limit },
    );
    return rows.map((r) => String(r.id));
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

function toMemory(row: Row): MemoryPoint {
  return memoryPoint({ ...(row.p as Properties), id: String(row.id) });
}

function toRelationship(row: Row): MemoryPoint {
  return relationshipPoint(String(row.id), String(row.type), String(row.from), String(row.to), row.p as Properties);
}
