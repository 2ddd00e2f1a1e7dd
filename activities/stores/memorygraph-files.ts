/**
 * memorygraph data in files, as a source and as a target:
 *
 * - `memorygraph-2.0`: memorygraph's own export (`format_version "2.0"`,
 *   `memories[]`, `relationships[{from_memory_id, to_memory_id, type,
 *   properties}]`). memshift writes it so that `memorygraph import` reads it,
 *   and adds what memorygraph's export drops: each memory's full `properties`
 *   and each relationship's id and every property, which memshift reads back
 *   losslessly (memorygraph's import ignores them).
 * - `memshift-jsonl`: one JSON record per line (memories, then relationships,
 *   each with every property and the SQLite row timestamps), and
 *   `<file>.manifest.json` with counts per relationship type and the file's sha256.
 *
 * As a target, points go first into a staging store in memorygraph's SQLite
 * layout beside the file (resumable, idempotent by id, like any store); `seal`
 * streams it into the file under a temporary name and renames it into place.
 * As a source, a file is checked (format, manifest sha256), parsed, and served
 * from memory in id order: files are exports, read once by a run.
 */
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { v5 as uuidv5 } from 'uuid';
import type { MemoryPoint, Page } from './contract';
import {
  asMemory,
  asRelationship,
  edgeCursorOf,
  edgePageOf,
  memoryPoint,
  relationshipPoint,
  scan,
  type Entity,
  type GraphCounts,
  type GraphStore,
  type Properties,
} from '../memorygraph/graph-store';

export type ExportFormat = 'memorygraph-2.0' | 'memshift-jsonl';

export const JSONL_FORMAT = 'memshift.memorygraph/1';
export const manifestOf = (file: string) => `${file}.manifest.json`;
export const stagingOf = (file: string) => `${file}.memshift-staging.db`;

/** Names memorygraph's export writes under `context` (and its import reads). */
const EXPORT_CONTEXT_FIELDS = ['project_path', 'function_name', 'class_name', 'files_involved', 'languages', 'frameworks', 'technologies', 'environment', 'additional_metadata'];
/** Context fields that are lists or maps: memorygraph stores them flattened as JSON text when they are empty or nested. */
const STRUCTURED_CONTEXT_FIELDS = new Set(['files_involved', 'languages', 'frameworks', 'technologies', 'additional_metadata']);
/** The top-level memory fields of memorygraph's export. */
const EXPORT_MEMORY_FIELDS = ['id', 'type', 'title', 'content', 'summary', 'tags', 'importance', 'confidence', 'created_at', 'updated_at'];
/** Relationships in a memorygraph export carry no id: one is derived from what identifies them there. */
const RELATIONSHIP_ID_NAMESPACE = 'c6f1a0a4-2f1e-4a55-8f3e-3c1d0b7e9a21';

export interface JsonlManifest {
  format: typeof JSONL_FORMAT;
  created_at: string;
  source: string;
  memories: number;
  relationships: number;
  relationships_by_type: Record<string, number>;
  sha256: string;
  bytes: number;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function malformed(file: string, why: string): never {
  throw ApplicationFailure.nonRetryable(`${file} is not a usable memorygraph export: ${why}. Nothing was written.`, 'MalformedExportFile');
}

/** A read-only store over points held in memory, in id order. */
export class InMemoryGraphStore implements GraphStore {
  private readonly sorted: Record<Entity, MemoryPoint[]>;
  private readonly byId: Record<Entity, Map<string, MemoryPoint>>;

  constructor(
    readonly name: string,
    memories: MemoryPoint[],
    relationships: MemoryPoint[],
  ) {
    this.sorted = { memories: [...memories].sort((a, b) => byText(a.id, b.id)), relationships: [...relationships].sort((a, b) => byText(asRelationship(a).from, asRelationship(b).from) || byText(a.id, b.id)) };
    this.byId = {
      memories: new Map(memories.map((p) => [p.id, p])),
      relationships: new Map(relationships.map((p) => [p.id, p])),
    };
    for (const entity of ['memories', 'relationships'] as const) {
      if (this.byId[entity].size !== this.sorted[entity].length) malformed(name, `two ${entity} share an id`);
    }
  }

  async counts(): Promise<GraphCounts> {
    const relationshipsByType: Record<string, number> = {};
    for (const p of this.sorted.relationships) relationshipsByType[asRelationship(p).type] = (relationshipsByType[asRelationship(p).type] ?? 0) + 1;
    return { memories: this.sorted.memories.length, relationships: this.sorted.relationships.length, relationshipsByType };
  }

  /** In the order every store reads: memories by id, relationships by start memory then id (graph-store.ts). */
  async read(entity: Entity, cursor: string | null, limit: number): Promise<Page> {
    const all = this.sorted[entity];
    const edge = entity === 'relationships' ? edgeCursorOf(cursor) : null;
    const passed = (p: MemoryPoint) => {
      if (!edge) return cursor !== null && p.id <= cursor;
      const order = byText(asRelationship(p).from, edge.from);
      return order < 0 || (order === 0 && (edge.id === null || p.id <= edge.id));
    };
    // First point after the cursor (binary search: points are sorted).
    let [start, hi] = [0, all.length];
    while (start < hi) {
      const mid = (start + hi) >> 1;
      if (passed(all[mid])) start = mid + 1;
      else hi = mid;
    }
    const points = all.slice(start, start + limit);
    if (edge) return edgePageOf(points, limit);
    return { points, next: start + limit < all.length ? points[points.length - 1].id : null };
  }

  async retrieve(entity: Entity, ids: string[]): Promise<MemoryPoint[]> {
    return ids.map((id) => this.byId[entity].get(id)).filter((p): p is MemoryPoint => !!p);
  }

  shape(_entity: Entity, point: MemoryPoint): MemoryPoint {
    return point;
  }

  async upsert(): Promise<void> {
    throw ApplicationFailure.nonRetryable(`${this.name} is a file source; memshift never writes into it.`, 'SourceIsReadOnly');
  }

  async remove(): Promise<void> {
    throw ApplicationFailure.nonRetryable(`${this.name} is a file source; memshift never writes into it.`, 'SourceIsReadOnly');
  }

  async dangling(limit: number): Promise<string[]> {
    const ids = this.byId.memories;
    return this.sorted.relationships
      .filter((p) => !ids.has(asRelationship(p).from) || !ids.has(asRelationship(p).to))
      .slice(0, limit)
      .map((p) => p.id);
  }

  async close(): Promise<void> {}
}

// --- reading -------------------------------------------------------------------

export async function readExportFile(file: string, format: ExportFormat): Promise<InMemoryGraphStore> {
  const exists = await fs.stat(file).then((s) => s.isFile(), () => false);
  if (!exists) throw ApplicationFailure.nonRetryable(`Export file not found: ${file}. Check the plan's path.`, 'SourceNotFound');
  return format === 'memorygraph-2.0' ? readMemorygraphExport(file) : readJsonl(file);
}

async function readMemorygraphExport(file: string): Promise<InMemoryGraphStore> {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    malformed(file, 'it is not JSON');
  }
  if (typeof data !== 'object' || data === null || !Array.isArray(data.memories) || !Array.isArray(data.relationships)) {
    malformed(file, "it lacks 'memories' or 'relationships' lists");
  }
  const version = data.format_version ?? data.export_version;
  if (version !== '2.0' && version !== '1.0') malformed(file, `format_version is ${JSON.stringify(version ?? null)}, not "2.0"`);
  // memshift's own 2.0 files carry every relationship time; memorygraph's carry none.
  const exportedAt = typeof data.export_date === 'string' && data.backend_type !== 'memshift' ? data.export_date : undefined;
  const memories = (data.memories as Record<string, unknown>[]).map((m, i) => exportedMemory(file, m, i));
  const relationships = (data.relationships as Record<string, unknown>[]).map((r, i) => exportedRelationship(file, r, i, exportedAt));
  return new InMemoryGraphStore(`file://${file}`, memories, relationships);
}

function exportedMemory(file: string, m: Record<string, unknown>, index: number): MemoryPoint {
  if (typeof m !== 'object' || m === null) malformed(file, `memory #${index} is not an object`);
  const missing = ['id', 'type', 'title', 'content'].filter((k) => typeof m[k] !== 'string');
  if (missing.length) malformed(file, `memory #${index} lacks ${missing.join(', ')}`);
  // memshift's own 2.0 files carry every property; memorygraph's are flattened the way its backends store them.
  if (typeof m.properties === 'object' && m.properties !== null) return memoryPoint({ ...(m.properties as Properties), id: m.id });
  const properties: Properties = {};
  for (const [key, value] of Object.entries(m)) if (key !== 'context') properties[key] = value;
  const context = (m.context ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(context)) {
    if (value === null || value === undefined) continue;
    const simpleList = Array.isArray(value) && value.length > 0 && value.every((v) => ['string', 'number', 'boolean'].includes(typeof v));
    properties[`context_${key}`] = typeof value === 'object' && !simpleList ? pythonJson(value) : value;
  }
  return memoryPoint(properties);
}

function exportedRelationship(file: string, r: Record<string, unknown>, index: number, exportedAt?: string): MemoryPoint {
  if (typeof r !== 'object' || r === null) malformed(file, `relationship #${index} is not an object`);
  const { from_memory_id: from, to_memory_id: to, type } = r;
  if (typeof from !== 'string' || typeof to !== 'string' || typeof type !== 'string') {
    malformed(file, `relationship #${index} lacks from_memory_id, to_memory_id or type`);
  }
  const properties = { ...((r.properties ?? {}) as Properties) };
  const id = typeof properties.id === 'string' ? properties.id : uuidv5(`${from}\u0000${to}\u0000${type}`, RELATIONSHIP_ID_NAMESPACE);
  // memorygraph's export drops the relationship's times; the export's own date is the best that is known.
  if (exportedAt) for (const key of ['created_at', 'valid_from', 'recorded_at']) properties[key] ??= exportedAt;
  return relationshipPoint(id, type, from, to, properties);
}

async function readJsonl(file: string): Promise<InMemoryGraphStore> {
  const manifestText = await fs.readFile(manifestOf(file), 'utf8').catch(() => malformed(file, `its manifest ${manifestOf(file)} is missing`));
  let manifest: JsonlManifest;
  try {
    manifest = JSON.parse(manifestText) as JsonlManifest;
  } catch {
    malformed(file, 'its manifest is not JSON');
  }
  if (manifest.format !== JSONL_FORMAT) malformed(file, `its manifest names format ${JSON.stringify(manifest.format)}, not ${JSONL_FORMAT}`);
  const hash = createHash('sha256');
  const memories: MemoryPoint[] = [];
  const relationships: MemoryPoint[] = [];
  const lines = createInterface({ input: createReadStream(file).on('data', (chunk) => hash.update(chunk)), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line) continue;
    let record: { kind?: string; id?: string; payload?: Record<string, unknown> };
    try {
      record = JSON.parse(line);
    } catch {
      malformed(file, `line ${n} is not JSON`);
    }
    if (typeof record.id !== 'string' || typeof record.payload !== 'object') malformed(file, `line ${n} is not a memory or relationship record`);
    const point = { id: record.id, vector: [], payload: record.payload! };
    if (record.kind === 'memory') memories.push(point);
    else if (record.kind === 'relationship') relationships.push(point);
    else malformed(file, `line ${n} has kind ${JSON.stringify(record.kind)}`);
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== manifest.sha256) malformed(file, `its sha256 ${sha256} differs from the manifest's ${manifest.sha256}`);
  if (memories.length !== manifest.memories || relationships.length !== manifest.relationships) {
    malformed(file, `it holds ${memories.length} memories and ${relationships.length} relationships; the manifest says ${manifest.memories} and ${manifest.relationships}`);
  }
  return new InMemoryGraphStore(`file://${file}`, memories, relationships);
}

// --- writing -------------------------------------------------------------------

export interface SealedFile {
  file: string;
  memories: number;
  relationships: number;
  bytes: number;
  sha256: string;
}

/**
 * Streams every memory and relationship of `store` into `file` in `format`
 * (under `<file>.tmp`, renamed into place) and, for JSONL, writes its manifest.
 */
export async function writeExportFile(store: GraphStore, file: string, format: ExportFormat, source: string, onPage?: () => void): Promise<SealedFile> {
  const tmp = `${file}.tmp`;
  const out = createWriteStream(tmp);
  const hash = createHash('sha256');
  let bytes = 0;
  const write = async (text: string) => {
    hash.update(text);
    bytes += Buffer.byteLength(text);
    if (!out.write(text)) await once(out, 'drain');
  };
  const counts = await store.counts();
  let memories = 0;
  let relationships = 0;
  if (format === 'memorygraph-2.0') {
    const header = {
      format_version: '2.0',
      export_version: '1.0',
      export_date: new Date().toISOString(),
      backend_type: 'memshift',
      memory_count: counts.memories,
      relationship_count: counts.relationships,
    };
    await write(`${JSON.stringify(header).slice(0, -1)},"memories":[`);
    for await (const page of scan(store, 'memories', PAGE, onPage)) {
      for (const p of page) await write(`${memories++ ? ',' : ''}\n${JSON.stringify(exportMemory(p))}`);
    }
    await write('\n],"relationships":[');
    for await (const page of scan(store, 'relationships', PAGE, onPage)) {
      for (const p of page) await write(`${relationships++ ? ',' : ''}\n${JSON.stringify(exportRelationship(p))}`);
    }
    await write('\n]}\n');
  } else {
    for (const [entity, kind] of [['memories', 'memory'], ['relationships', 'relationship']] as const) {
      for await (const page of scan(store, entity, PAGE, onPage)) {
        for (const p of page) await write(`${JSON.stringify({ kind, id: p.id, payload: p.payload })}\n`);
        if (entity === 'memories') memories += page.length;
        else relationships += page.length;
      }
    }
  }
  out.end();
  await once(out, 'close');
  const sha256 = hash.digest('hex');
  if (format === 'memshift-jsonl') {
    const manifest: JsonlManifest = {
      format: JSONL_FORMAT,
      created_at: new Date().toISOString(),
      source,
      memories,
      relationships,
      relationships_by_type: counts.relationshipsByType,
      sha256,
      bytes,
    };
    await fs.writeFile(`${manifestOf(file)}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
    await fs.rename(`${manifestOf(file)}.tmp`, manifestOf(file));
  }
  await fs.rename(tmp, file);
  return { file, memories, relationships, bytes, sha256 };
}

const PAGE = 1000;

/** A memory as memorygraph's export writes it, plus every property (memorygraph's import ignores the extra key). */
function exportMemory(point: MemoryPoint): Record<string, unknown> {
  const { properties } = asMemory(point);
  const entry: Record<string, unknown> = {};
  for (const key of EXPORT_MEMORY_FIELDS) entry[key] = properties[key] ?? (key === 'tags' ? [] : null);
  const context: Record<string, unknown> = {};
  for (const key of EXPORT_CONTEXT_FIELDS) {
    const value = properties[`context_${key}`];
    if (value === undefined) continue;
    context[key] = typeof value === 'string' && STRUCTURED_CONTEXT_FIELDS.has(key) ? parseJsonOr(value) : value;
  }
  if (Object.keys(context).length) entry.context = context;
  entry.properties = properties;
  return entry;
}

function exportRelationship(point: MemoryPoint): Record<string, unknown> {
  const { type, from, to, properties } = asRelationship(point);
  return { from_memory_id: from, to_memory_id: to, type, properties };
}

function parseJsonOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** JSON as Python's json.dumps writes it (", " and ": " separators, non-ASCII escaped): how memorygraph flattens context values. */
function pythonJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (typeof value === 'object') return `{${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(', ')}}`;
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return JSON.stringify(value);
}
