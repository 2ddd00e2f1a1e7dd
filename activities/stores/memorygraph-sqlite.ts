/**
 * memorygraph's SQLite layout (memorygraphmcp 0.12.4, backends/sqlite_fallback.py):
 * `nodes(id, label, properties JSON, created_at, updated_at)`, memories being
 * `label = 'Memory'` rows; `relationships(id, from_id, to_id, rel_type,
 * properties JSON, created_at, valid_from, valid_until, recorded_at,
 * invalidated_by)`; FTS5 `nodes_fts(id, title, content, summary)` over
 * `nodes`. Older stores lack the four bi-temporal columns; they are read, not written.
 *
 * Reads go by primary key (`id > cursor`). Writes are `ON CONFLICT(id)` upserts
 * in one transaction per batch; the FTS index gets every memory memshift
 * writes (and loses the old text of one it rewrites), so full-text search
 * sees exactly the rows' titles, contents and summaries.
 */
import Database from 'better-sqlite3';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { ApplicationFailure } from '@temporalio/common';
import type { MemoryPoint } from './contract';
import {
  asMemory,
  asRelationship,
  edgeCursorOf,
  edgePageOf,
  memoryPoint,
  pageOf,
  relationshipPoint,
  type Entity,
  type GraphCounts,
  type GraphStore,
  type Properties,
} from '../memorygraph/graph-store';

type Db = Database.Database;

const SNAPSHOT_WORKER = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.source, { readonly: true, fileMustExist: true, timeout: 30000 });
try { db.prepare('VACUUM INTO ?').run(workerData.file); } finally { db.close(); }
`;

export type SqliteLayout = 'memorygraph-0.12' | 'memorygraph-pre-bitemporal';

export interface SqliteLayoutReport {
  layout: SqliteLayout | null;
  /** What is missing for memorygraph's layout (empty when recognised). */
  missing: string[];
  fts: boolean;
}

const NODE_COLUMNS = ['id', 'label', 'properties', 'created_at', 'updated_at'];
const RELATIONSHIP_COLUMNS = ['id', 'from_id', 'to_id', 'rel_type', 'properties', 'created_at'];
const BITEMPORAL_COLUMNS = ['valid_from', 'valid_until', 'recorded_at', 'invalidated_by'];

/** memorygraph 0.12.4's own DDL, so the memory server opens a store memshift created as its own. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS nodes (
  id TEXT PRIMARY KEY, label TEXT NOT NULL, properties TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS relationships (
  id TEXT PRIMARY KEY, from_id TEXT NOT NULL, to_id TEXT NOT NULL, rel_type TEXT NOT NULL, properties TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  valid_from TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, valid_until TIMESTAMP,
  recorded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, invalidated_by TEXT,
  FOREIGN KEY (from_id) REFERENCES nodes(id) ON DELETE CASCADE,
  FOREIGN KEY (to_id) REFERENCES nodes(id) ON DELETE CASCADE,
  FOREIGN KEY (invalidated_by) REFERENCES relationships(id) ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS idx_nodes_label ON nodes(label);
CREATE INDEX IF NOT EXISTS idx_nodes_created ON nodes(created_at);
CREATE INDEX IF NOT EXISTS idx_rel_from ON relationships(from_id);
CREATE INDEX IF NOT EXISTS idx_rel_to ON relationships(to_id);
CREATE INDEX IF NOT EXISTS idx_rel_type ON relationships(rel_type);
CREATE INDEX IF NOT EXISTS idx_relationships_temporal ON relationships(valid_from, valid_until);
CREATE INDEX IF NOT EXISTS idx_relationships_current ON relationships(valid_until) WHERE valid_until IS NULL;
CREATE INDEX IF NOT EXISTS idx_relationships_recorded ON relationships(recorded_at);
CREATE INDEX IF NOT EXISTS idx_nodes_memory ON nodes(label) WHERE label = 'Memory';
CREATE VIRTUAL TABLE IF NOT EXISTS nodes_fts USING fts5(id, title, content, summary, content='nodes', content_rowid='rowid');
`;

function columnsOf(db: Db, table: string): string[] {
  return (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((c) => c.name);
}

/** Which of memorygraph's SQLite layouts `db` has, or what it lacks. */
export function inspectSqliteLayout(db: Db): SqliteLayoutReport {
  const nodes = columnsOf(db, 'nodes');
  const relationships = columnsOf(db, 'relationships');
  const missing = [
    ...NODE_COLUMNS.filter((c) => !nodes.includes(c)).map((c) => `nodes.${c}`),
    ...RELATIONSHIP_COLUMNS.filter((c) => !relationships.includes(c)).map((c) => `relationships.${c}`),
  ];
  const fts = !!db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'nodes_fts'`).get();
  if (missing.length) return { layout: null, missing, fts };
  const bitemporal = BITEMPORAL_COLUMNS.every((c) => relationships.includes(c));
  return { layout: bitemporal ? 'memorygraph-0.12' : 'memorygraph-pre-bitemporal', missing: [], fts };
}

/** `2024-03-01T12:00:00+00:00` → `2024-03-01 12:00:00` (UTC), the form memorygraph's CURRENT_TIMESTAMP columns hold. */
function sqliteTimestamp(iso: unknown): string | null {
  if (typeof iso !== 'string') return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

interface NodeRow {
  id: string;
  properties: string;
  created_at: string | null;
  updated_at: string | null;
}

interface RelationshipRow {
  id: string;
  from_id: string;
  to_id: string;
  rel_type: string;
  properties: string;
  created_at: string | null;
}

function parseProperties(json: string, id: string): Properties {
  try {
    const parsed = JSON.parse(json) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Properties;
  } catch {
    // refused below
  }
  throw ApplicationFailure.nonRetryable(`Row ${id} has a properties column that is not a JSON object; memorygraph cannot read it either. Fix or remove the row.`, 'MalformedRow');
}

const nodePoint = (r: NodeRow) => memoryPoint({ ...parseProperties(r.properties, r.id), id: r.id }, { created_at: r.created_at, updated_at: r.updated_at });
const edgePoint = (r: RelationshipRow) =>
  relationshipPoint(r.id, r.rel_type, r.from_id, r.to_id, parseProperties(r.properties, r.id), { created_at: r.created_at });

export class MemorygraphSqliteStore implements GraphStore {
  readonly name: string;
  private readonly fts: boolean;

  private constructor(
    private readonly db: Db,
    file: string,
    readonly layout: SqliteLayoutReport,
  ) {
    this.name = `sqlite://${file}`;
    this.fts = layout.fts && !!db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'nodes_fts_docsize'`).get();
  }

  /** Opens an existing memorygraph SQLite file read-only; refuses any other file. */
  static openReadOnly(file: string): MemorygraphSqliteStore {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    return MemorygraphSqliteStore.recognised(db, file);
  }

  /**
   * Opens for writing, creating memorygraph's schema in a new or empty file.
   * The journal mode stays what memorygraph chose. The timeout waits for the live memory server's write lock rather than failing.
   */
  static openWritable(file: string): MemorygraphSqliteStore {
    const db = new Database(file, { timeout: 30_000 });
    // As memorygraph's own connection: no FK enforcement (invalidated_by may name a relationship copied later).
    db.pragma('foreign_keys = OFF');
    const empty = !db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table'`).get();
    if (empty) db.exec(SCHEMA);
    const store = MemorygraphSqliteStore.recognised(db, file);
    if (store.layout.layout !== 'memorygraph-0.12') {
      db.close();
      throw ApplicationFailure.nonRetryable(`${file} has memorygraph's older SQLite layout (no bi-temporal columns); memshift writes only the 0.12 layout. Open it once with memorygraph 0.12 to upgrade it.`, 'OldSqliteLayout');
    }
    return store;
  }

  private static recognised(db: Db, file: string): MemorygraphSqliteStore {
    let layout: SqliteLayoutReport;
    try {
      layout = inspectSqliteLayout(db);
    } catch (err) {
      db.close();
      throw ApplicationFailure.nonRetryable(`${file} cannot be read as SQLite: ${(err as Error).message}`, 'NotMemorygraphStore');
    }
    if (!layout.layout) {
      db.close();
      throw ApplicationFailure.nonRetryable(`${file} is not a memorygraph SQLite store: missing ${layout.missing.join(', ')}.`, 'NotMemorygraphStore');
    }
    return new MemorygraphSqliteStore(db, file, layout);
  }

  async counts(): Promise<GraphCounts> {
    const memories = (this.db.prepare(`SELECT count(*) AS n FROM nodes WHERE label = 'Memory'`).get() as { n: number }).n;
    const byType = this.db.prepare(`SELECT rel_type AS type, count(*) AS n FROM relationships GROUP BY rel_type ORDER BY rel_type`).all() as { type: string; n: number }[];
    return {
      memories,
      relationships: byType.reduce((sum, t) => sum + t.n, 0),
      relationshipsByType: Object.fromEntries(byType.map((t) => [t.type, t.n])),
    };
  }

  async read(entity: Entity, cursor: string | null, limit: number) {
    if (entity === 'memories') {
      const rows = this.db
        .prepare(`SELECT id, properties, created_at, updated_at FROM nodes WHERE label = 'Memory' AND id > ? ORDER BY id LIMIT ?`)
        .all(cursor ?? '', limit) as NodeRow[];
      return pageOf(rows.map(nodePoint), limit);
    }
    // The rest of the cursor's memory, then the memories after it: each an idx_rel_from search (one OR'd query sorts the whole table).
    const after = edgeCursorOf(cursor);
    const select = `SELECT id, from_id, to_id, rel_type, properties, created_at FROM relationships`;
    const rows = (after.id === null ? [] : this.db.prepare(`${select} WHERE from_id = ? AND id > ? ORDER BY id LIMIT ?`).all(after.from, after.id, limit)) as RelationshipRow[];
    if (rows.length < limit) rows.push(...(this.db.prepare(`${select} WHERE from_id > ? ORDER BY from_id, id LIMIT ?`).all(after.from, limit - rows.length) as RelationshipRow[]));
    return edgePageOf(rows.map(edgePoint), limit);
  }

  async retrieve(entity: Entity, ids: string[]): Promise<MemoryPoint[]> {
    if (ids.length === 0) return [];
    const json = JSON.stringify(ids);
    if (entity === 'memories') {
      const rows = this.db
        .prepare(`SELECT id, properties, created_at, updated_at FROM nodes WHERE label = 'Memory' AND id IN (SELECT value FROM json_each(?))`)
        .all(json) as NodeRow[];
      return rows.map(nodePoint);
    }
    const rows = this.db
      .prepare(`SELECT id, from_id, to_id, rel_type, properties, created_at FROM relationships WHERE id IN (SELECT value FROM json_each(?))`)
      .all(json) as RelationshipRow[];
    return rows.map(edgePoint);
  }

  shape(entity: Entity, point: MemoryPoint): MemoryPoint {
    if (entity === 'memories') {
      const { properties, row } = asMemory(point);
      return memoryPoint(properties, row ?? { created_at: sqliteTimestamp(properties.created_at), updated_at: sqliteTimestamp(properties.updated_at) });
    }
    const { type, from, to, properties, row } = asRelationship(point);
    return relationshipPoint(point.id, type, from, to, properties, row ?? { created_at: sqliteTimestamp(properties.created_at) });
  }

  async upsert(entity: Entity, points: MemoryPoint[]): Promise<void> {
    const shaped = points.map((p) => this.shape(entity, p));
    if (entity === 'memories') this.db.transaction(() => this.upsertNodes(shaped))();
    else this.db.transaction(() => this.upsertRelationships(shaped))();
  }

  private upsertNodes(points: MemoryPoint[]): void {
    const unindex = this.fts ? this.unindexStatement() : null;
    const index = this.fts
      ? this.db.prepare(`INSERT INTO nodes_fts(rowid, id, title, content, summary) VALUES (?, ?, ?, ?, ?)`)
      : null;
    const write = this.db.prepare(
      `INSERT INTO nodes (id, label, properties, created_at, updated_at) VALUES (?, 'Memory', ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET label = 'Memory', properties = excluded.properties, created_at = excluded.created_at, updated_at = excluded.updated_at
       RETURNING rowid`,
    );
    for (const point of points) {
      const { properties, row } = asMemory(point);
      unindex?.(point.id);
      const { rowid } = write.get(point.id, JSON.stringify(properties), row?.created_at ?? null, row?.updated_at ?? null) as { rowid: number };
      index?.run(rowid, point.id, text(properties.title), text(properties.content), text(properties.summary));
    }
  }

  /** Removes a node's old text from the FTS index, when the index holds it (memorygraph itself never fills it). */
  private unindexStatement(): (id: string) => void {
    const old = this.db.prepare(
      `SELECT n.rowid AS rowid, n.properties AS properties FROM nodes n JOIN nodes_fts_docsize d ON d.id = n.rowid WHERE n.id = ?`,
    );
    const remove = this.db.prepare(`INSERT INTO nodes_fts(nodes_fts, rowid, id, title, content, summary) VALUES ('delete', ?, ?, ?, ?, ?)`);
    return (id) => {
      const row = old.get(id) as { rowid: number; properties: string } | undefined;
      if (!row) return;
      const p = parseProperties(row.properties, id);
      remove.run(row.rowid, id, text(p.title), text(p.content), text(p.summary));
    };
  }

  private upsertRelationships(points: MemoryPoint[]): void {
    const write = this.db.prepare(
      `INSERT INTO relationships (id, from_id, to_id, rel_type, properties, created_at, valid_from, valid_until, recorded_at, invalidated_by)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET from_id = excluded.from_id, to_id = excluded.to_id, rel_type = excluded.rel_type,
         properties = excluded.properties, created_at = excluded.created_at, valid_from = excluded.valid_from,
         valid_until = excluded.valid_until, recorded_at = excluded.recorded_at, invalidated_by = excluded.invalidated_by`,
    );
    for (const point of points) {
      const { type, from, to, properties: p, row } = asRelationship(point);
      // valid_from and recorded_at are NOT NULL; memorygraph defaults them to the creation time.
      const validFrom = p.valid_from ?? p.created_at ?? p.recorded_at ?? row?.created_at ?? EPOCH;
      const recordedAt = p.recorded_at ?? p.created_at ?? validFrom;
      write.run(point.id, from, to, type, JSON.stringify(p), row?.created_at ?? null, validFrom, p.valid_until ?? null, recordedAt, p.invalidated_by ?? null);
    }
  }

  async remove(entity: Entity, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const json = JSON.stringify(ids);
    this.db.transaction(() => {
      if (entity === 'relationships') {
        this.db.prepare(`DELETE FROM relationships WHERE id IN (SELECT value FROM json_each(?))`).run(json);
        return;
      }
      // Only once no relationship touches them: nothing else is ever deleted with a memory.
      const deletable = (this.db
        .prepare(
          `SELECT id FROM nodes WHERE label = 'Memory' AND id IN (SELECT value FROM json_each(?))
             AND NOT EXISTS (SELECT 1 FROM relationships r WHERE r.from_id = nodes.id OR r.to_id = nodes.id)`,
        )
        .all(json) as { id: string }[]).map((r) => r.id);
      const unindex = this.fts ? this.unindexStatement() : null;
      const remove = this.db.prepare(`DELETE FROM nodes WHERE id = ? AND label = 'Memory'`);
      for (const id of deletable) {
        unindex?.(id);
        remove.run(id);
      }
    })();
  }

  async dangling(limit: number): Promise<string[]> {
    const rows = this.db
      .prepare(
        `SELECT r.id FROM relationships r
         WHERE NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = r.from_id AND n.label = 'Memory')
            OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = r.to_id AND n.label = 'Memory')
         ORDER BY r.id LIMIT ?`,
      )
      .all(limit) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /**
   * A consistent copy of the whole file (VACUUM INTO: one read transaction, as
   * long as copying the file takes), made on a worker thread's own connection:
   * a large store takes seconds, during which this thread keeps heartbeating.
   * (SQLite's online backup would restart on every write the live service makes.)
   */
  async snapshotTo(file: string): Promise<void> {
    const worker = new Worker(SNAPSHOT_WORKER, { eval: true, workerData: { driver: require.resolve('better-sqlite3'), source: this.db.name, file } });
    const [code] = (await Promise.race([once(worker, 'exit'), once(worker, 'error').then(([err]) => Promise.reject(err))])) as [number];
    if (code !== 0) throw new Error(`Snapshot of ${this.db.name} stopped with exit code ${code}`);
  }

  integrityProblems(): string[] {
    return (this.db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]).map((r) => r.integrity_check).filter((r) => r !== 'ok');
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

const EPOCH = '1970-01-01T00:00:00+00:00';
const text = (value: unknown) => (typeof value === 'string' ? value : null);
