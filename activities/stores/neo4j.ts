/**
 * Neo4j graph export and restore through Bolt, for the backup phase before a
 * graph store is decommissioned (mem0 2.x dropped graph memory).
 *
 * The export is one JSONL file — schema statements, then every node, then
 * every relationship, one record per line — and `<file>.manifest.json` with
 * counts and the file's sha256. It is read in a single read transaction
 * streamed with backpressure, so Neo4j keeps running and memory stays flat.
 * Neo4j reads are read-committed, not snapshots: export a graph nobody is
 * writing to (the decommission case) for counts that match exactly.
 *
 * Property values keep their Neo4j types: integers as 64-bit integers (not
 * floats), floats (NaN, ±Infinity and -0.0 included), strings, booleans, byte
 * arrays, Date, Time, LocalTime, DateTime (offset or zone id), LocalDateTime,
 * Duration, Point (2D/3D, any SRID), and lists of all of these. Types that
 * Neo4j 5 lacks (2025.x VECTOR) are refused with the property's name.
 *
 * Credentials come only from the worker's NEO4J_USER / NEO4J_PASSWORD.
 */
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import neo4j, { type Driver, type Integer, type ManagedTransaction, type Session } from 'neo4j-driver';

export interface GraphLocation {
  /** bolt:// or neo4j:// URI without credentials. */
  uri: string;
  /** Database name; the server's default database when omitted. */
  database?: string;
}

export interface GraphFile extends GraphLocation {
  /** Path of the JSONL export; its manifest is `<file>.manifest.json`. */
  file: string;
}

export interface GraphCounts {
  nodes: number;
  relationships: number;
}

export interface GraphCountsByKind extends GraphCounts {
  /** Nodes per label; a node with two labels counts under both. */
  nodesByLabel: Record<string, number>;
  relationshipsByType: Record<string, number>;
}

export interface GraphExportSummary extends GraphCountsByKind {
  file: string;
  manifestFile: string;
  sha256: string;
  bytes: number;
  schemaStatements: number;
}

export interface GraphRestoreResult extends GraphCountsByKind {
  schemaStatements: number;
}

/** Called after each batch so an activity can heartbeat; carries counts only. */
export type GraphProgress = (done: GraphCounts) => void;

export const GRAPH_EXPORT_FORMAT = 'memshift.neo4j-graph/1';

/** The on-disk manifest written beside every export. */
export interface GraphExportManifest {
  format: typeof GRAPH_EXPORT_FORMAT;
  created_at: string;
  source_uri: string;
  database: string | null;
  file: string;
  sha256: string;
  bytes: number;
  nodes: number;
  relationships: number;
  nodes_by_label: Record<string, number>;
  relationships_by_type: Record<string, number>;
  schema_statements: number;
}

/** A property value as written to JSONL: plain JSON, or a one-key tagged object for types JSON lacks. */
export type EncodedValue =
  | string
  | number
  | boolean
  | EncodedValue[]
  | { $int: string }
  | { $float: string }
  | { $bytes: string }
  | { $date: { year: number; month: number; day: number } }
  | { $localtime: TimeOfDay }
  | { $time: TimeOfDay & { offsetSeconds: number } }
  | { $localdatetime: DateAndTime }
  | { $datetime: DateAndTime & { offsetSeconds: number | null; zoneId: string | null } }
  | { $duration: { months: string; days: string; seconds: string; nanoseconds: string } }
  | { $point: { srid: number; x: number; y: number; z?: number } };

interface TimeOfDay {
  hour: number;
  minute: number;
  second: number;
  nanosecond: number;
}

interface DateAndTime extends TimeOfDay {
  year: number;
  month: number;
  day: number;
}

type EncodedProperties = Record<string, EncodedValue>;

type ExportRecord =
  | { kind: 'schema'; statement: string }
  | { kind: 'node'; id: string; labels: string[]; properties: EncodedProperties }
  | { kind: 'relationship'; id: string; type: string; start: string; end: string; properties: EncodedProperties };

/** Temporary marker on restored nodes so relationships can find their ends by the exported id. */
const RESTORE_LABEL = '__MemshiftRestore';
const RESTORE_ID = '__memshift_restore_id';
const RESTORE_CONSTRAINT = 'memshift_restore_id';

const BATCH_MAX_RECORDS = 1000;
/** Keeps one UNWIND parameter modest when nodes carry large embeddings. */
const BATCH_MAX_BYTES = 4 * 1024 * 1024;
const EXPORT_PROGRESS_EVERY = 1000;
/** Only index and constraint creation is replayed from an export, never arbitrary Cypher. */
const SCHEMA_STATEMENT = /^CREATE\s+(?:[A-Z]+\s+)*(?:INDEX|CONSTRAINT)\b/i;

export function manifestPathFor(file: string): string {
  return `${file}.manifest.json`;
}

/**
 * Streams the whole graph at `uri` into `file` (JSONL) and writes its manifest.
 * Both are written under a temporary name and renamed, so a crash never leaves
 * a file that looks complete.
 */
export async function exportGraph(input: GraphFile, onProgress?: GraphProgress): Promise<GraphExportSummary> {
  const { uri, database, file } = input;
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const partialFile = `${file}.partial`;
  return withSession(input, 'READ', async (session) => {
    const schema = await readSchemaStatements(session);
    // executeRead may retry the whole read after a transient failure; each attempt rewrites the file.
    const written = await session.executeRead((tx) => writeExport(tx, partialFile, schema, onProgress));
    await rename(partialFile, file);
    const manifest: GraphExportManifest = {
      format: GRAPH_EXPORT_FORMAT,
      created_at: new Date().toISOString(),
      source_uri: uri,
      database: database ?? null,
      file: path.basename(file),
      sha256: written.sha256,
      bytes: written.bytes,
      nodes: written.nodes,
      relationships: written.relationships,
      nodes_by_label: written.nodesByLabel,
      relationships_by_type: written.relationshipsByType,
      schema_statements: schema.length,
    };
    const manifestFile = manifestPathFor(file);
    await writeFile(`${manifestFile}.partial`, `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(`${manifestFile}.partial`, manifestFile);
    return { file, manifestFile, schemaStatements: schema.length, ...written };
  });
}

/**
 * Recreates an export in an empty database: checks the file against its
 * manifest, writes nodes then relationships in batches, replays the schema,
 * and checks the resulting counts against the manifest.
 */
export async function restoreGraph(input: GraphFile, onProgress?: GraphProgress): Promise<GraphRestoreResult> {
  const { file } = input;
  const manifest = await readManifest(file);
  await verifyChecksum(file, manifest);

  return withSession(input, 'WRITE', async (session) => {
    const existing = await countGraph(session);
    if (existing.nodes > 0) {
      throw ApplicationFailure.nonRetryable(
        `Refusing to restore ${file} into ${describeLocation(input)}: the database is not empty ` +
          `(${existing.nodes} nodes, ${existing.relationships} relationships). Restore into an empty database.`,
        'Neo4jTargetNotEmpty',
      );
    }
    let restored: GraphRestoreResult;
    try {
      restored = await loadExport(session, file, onProgress);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw ApplicationFailure.nonRetryable(
        `Restoring ${file} into ${describeLocation(input)} failed: ${reason}. The database may now hold part of the graph; ` +
          'empty it (e.g. MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS) before trying again.',
        'Neo4jRestoreFailed',
        error,
      );
    }
    const mismatch = describeCountMismatch(manifest, restored);
    if (mismatch) {
      throw ApplicationFailure.nonRetryable(
        `Restore of ${file} into ${describeLocation(input)} does not match its manifest: ${mismatch}`,
        'Neo4jRestoreMismatch',
      );
    }
    return restored;
  });
}

/** Exact node and relationship totals (from Neo4j's count store). */
export async function graphCounts(input: GraphLocation): Promise<GraphCounts> {
  return withSession(input, 'READ', countGraph);
}

/**
 * A driver for `uri` with the worker's credentials (NEO4J_USER, NEO4J_PASSWORD;
 * none when unset). Credentials inside the URI are refused: URIs travel in
 * workflow history.
 */
export function openNeo4jDriver(uri: string): Driver {
  if (/^[a-z0-9+.-]+:\/\/[^/]*@/i.test(uri)) {
    throw ApplicationFailure.nonRetryable(
      `Neo4j URI ${uri.replace(/\/\/[^/]*@/, '//***@')} carries credentials; pass the URI without them ` +
        "and set NEO4J_USER / NEO4J_PASSWORD in the worker's environment",
      'Neo4jCredentialsInUri',
    );
  }
  const user = process.env.NEO4J_USER;
  const password = process.env.NEO4J_PASSWORD;
  const auth = user || password ? neo4j.auth.basic(user || 'neo4j', password ?? '') : undefined;
  return neo4j.driver(uri, auth, { userAgent: 'memshift' });
}

async function withSession<T>(location: GraphLocation, mode: 'READ' | 'WRITE', work: (session: Session) => Promise<T>): Promise<T> {
  const driver = openNeo4jDriver(location.uri);
  try {
    await verifyReachable(driver, location);
    const session = driver.session({
      database: location.database,
      defaultAccessMode: mode === 'READ' ? neo4j.session.READ : neo4j.session.WRITE,
    });
    try {
      return await work(session);
    } finally {
      await session.close();
    }
  } finally {
    await driver.close();
  }
}

/**
 * Neo4j answers and takes the worker's credentials. Refused credentials never
 * heal (non-retryable); an unreachable server may, so it is retried — unless
 * `failFast` (a preflight, where a typo in the URI should stop the run at once).
 */
export async function verifyReachable(driver: Driver, location: GraphLocation, failFast = false): Promise<void> {
  try {
    await driver.getServerInfo({ database: location.database });
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    const reason = error instanceof Error ? error.message : String(error);
    if (code.startsWith('Neo.ClientError.Security.')) {
      throw ApplicationFailure.nonRetryable(
        `Neo4j at ${describeLocation(location)} refused the credentials (${reason}); set NEO4J_USER / NEO4J_PASSWORD in the worker's environment`,
        'Neo4jUnauthorized',
      );
    }
    const message = `Neo4j at ${describeLocation(location)} is unreachable: ${reason}`;
    if (failFast) throw ApplicationFailure.nonRetryable(`${message}. Check the URI.`, 'Neo4jUnreachable');
    throw new Error(message, { cause: error });
  }
}

function describeLocation({ uri, database }: GraphLocation): string {
  return database ? `${uri} (database ${database})` : uri;
}

async function countGraph(session: Session): Promise<GraphCounts> {
  return session.executeRead(async (tx) => {
    const nodes = await tx.run('MATCH (n) RETURN count(n) AS n');
    const relationships = await tx.run('MATCH ()-[r]->() RETURN count(r) AS n');
    return { nodes: num(nodes.records[0].get('n')), relationships: num(relationships.records[0].get('n')) };
  });
}

/** CREATE statements for user-defined indexes and constraints (token lookup and constraint-owned indexes come with the database or the constraint). */
async function readSchemaStatements(session: Session): Promise<string[]> {
  const constraints = await session.run('SHOW CONSTRAINTS YIELD createStatement RETURN createStatement ORDER BY createStatement');
  const indexes = await session.run(
    `SHOW INDEXES YIELD type, owningConstraint, createStatement
     WHERE type <> 'LOOKUP' AND owningConstraint IS NULL
     RETURN createStatement ORDER BY createStatement`,
  );
  return [...constraints.records, ...indexes.records].map((record) => record.get('createStatement') as string);
}

interface WrittenExport extends GraphCountsByKind {
  sha256: string;
  bytes: number;
}

async function writeExport(tx: ManagedTransaction, file: string, schema: string[], onProgress?: GraphProgress): Promise<WrittenExport> {
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  const written: WrittenExport = { nodes: 0, relationships: 0, nodesByLabel: {}, relationshipsByType: {}, sha256: '', bytes: 0 };
  const writeRecord = async (record: ExportRecord) => {
    const line = Buffer.from(`${JSON.stringify(record)}\n`);
    hash.update(line);
    written.bytes += line.length;
    if (!out.write(line)) await once(out, 'drain');
  };
  const reportProgress = () => {
    if ((written.nodes + written.relationships) % EXPORT_PROGRESS_EVERY === 0) {
      onProgress?.({ nodes: written.nodes, relationships: written.relationships });
    }
  };

  try {
    for (const statement of schema) await writeRecord({ kind: 'schema', statement });

    // Async iteration pulls records from the server only as fast as the file takes them.
    const nodes = tx.run('MATCH (n) RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS properties');
    for await (const record of nodes) {
      const labels = record.get('labels') as string[];
      await writeRecord({ kind: 'node', id: record.get('id'), labels, properties: encodeProperties(record.get('properties')) });
      written.nodes++;
      for (const label of labels) written.nodesByLabel[label] = (written.nodesByLabel[label] ?? 0) + 1;
      reportProgress();
    }

    const relationships = tx.run(
      `MATCH ()-[r]->()
       RETURN elementId(r) AS id, type(r) AS type, elementId(startNode(r)) AS start, elementId(endNode(r)) AS end, properties(r) AS properties`,
    );
    for await (const record of relationships) {
      const type = record.get('type') as string;
      await writeRecord({
        kind: 'relationship',
        id: record.get('id'),
        type,
        start: record.get('start'),
        end: record.get('end'),
        properties: encodeProperties(record.get('properties')),
      });
      written.relationships++;
      written.relationshipsByType[type] = (written.relationshipsByType[type] ?? 0) + 1;
      reportProgress();
    }

    out.end();
    await once(out, 'finish');
  } catch (error) {
    out.destroy();
    await rm(file, { force: true });
    throw error;
  }
  written.sha256 = hash.digest('hex');
  onProgress?.({ nodes: written.nodes, relationships: written.relationships });
  return written;
}

async function readManifest(file: string): Promise<GraphExportManifest> {
  const manifestFile = manifestPathFor(file);
  let manifest: GraphExportManifest;
  try {
    manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as GraphExportManifest;
  } catch (error) {
    throw ApplicationFailure.nonRetryable(
      `Cannot read the manifest ${manifestFile} of ${file}: ${error instanceof Error ? error.message : String(error)}`,
      'Neo4jExportManifestUnreadable',
    );
  }
  if (manifest.format !== GRAPH_EXPORT_FORMAT) {
    throw ApplicationFailure.nonRetryable(
      `${manifestFile} has format ${JSON.stringify(manifest.format)}; expected ${GRAPH_EXPORT_FORMAT}`,
      'Neo4jExportManifestUnreadable',
    );
  }
  return manifest;
}

async function verifyChecksum(file: string, manifest: GraphExportManifest): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== manifest.sha256 || bytes !== manifest.bytes) {
    throw ApplicationFailure.nonRetryable(
      `${file} does not match its manifest (sha256 ${sha256}, ${bytes} bytes; manifest says ${manifest.sha256}, ` +
        `${manifest.bytes} bytes): the export is damaged or was changed, so nothing was restored`,
      'Neo4jExportChecksumMismatch',
    );
  }
}

async function loadExport(session: Session, file: string, onProgress?: GraphProgress): Promise<GraphRestoreResult> {
  await session.run(`CREATE CONSTRAINT ${RESTORE_CONSTRAINT} IF NOT EXISTS FOR (n:${RESTORE_LABEL}) REQUIRE n.${RESTORE_ID} IS UNIQUE`);
  await session.run('CALL db.awaitIndexes(300)');

  const restored: GraphRestoreResult = { nodes: 0, relationships: 0, nodesByLabel: {}, relationshipsByType: {}, schemaStatements: 0 };
  const schema: string[] = [];
  let batch: ExportRecord[] = [];
  let batchBytes = 0;
  let seenRelationship = false;

  const flush = async () => {
    if (batch.length === 0) return;
    const records = batch;
    batch = [];
    batchBytes = 0;
    if (seenRelationship) {
      await writeRelationships(session, records as RelationshipRecord[], restored);
    } else {
      await writeNodes(session, records as NodeRecord[], restored);
    }
    onProgress?.({ nodes: restored.nodes, relationships: restored.relationships });
  };

  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line === '') continue;
    const record = JSON.parse(line) as ExportRecord;
    if (record.kind === 'schema') {
      schema.push(record.statement);
      continue;
    }
    if (record.kind !== 'node' && record.kind !== 'relationship') throw new Error(`line ${lineNumber}: unknown record kind`);
    if (record.kind === 'node' && seenRelationship) throw new Error(`line ${lineNumber}: node after relationships; the export is out of order`);
    if (record.kind === 'relationship' && !seenRelationship) {
      await flush();
      seenRelationship = true;
    }
    batch.push(record);
    batchBytes += line.length;
    if (batch.length >= BATCH_MAX_RECORDS || batchBytes >= BATCH_MAX_BYTES) await flush();
  }
  await flush();

  // The constraint goes first so removing the marker does not maintain its index.
  await session.run(`DROP CONSTRAINT ${RESTORE_CONSTRAINT} IF EXISTS`);
  await session.run(
    `MATCH (n:${RESTORE_LABEL}) CALL { WITH n REMOVE n:${RESTORE_LABEL}, n.${RESTORE_ID} } IN TRANSACTIONS OF 10000 ROWS`,
  );
  restored.schemaStatements = await replaySchema(session, schema);
  return restored;
}

type NodeRecord = Extract<ExportRecord, { kind: 'node' }>;
type RelationshipRecord = Extract<ExportRecord, { kind: 'relationship' }>;

/** Labels can't be query parameters (before Cypher 25), so each distinct label set gets its own quoted CREATE. */
async function writeNodes(session: Session, records: NodeRecord[], restored: GraphRestoreResult): Promise<void> {
  const byLabels = groupBy(records, (record) => JSON.stringify(record.labels));
  await session.executeWrite(async (tx) => {
    for (const group of byLabels.values()) {
      const labels = [RESTORE_LABEL, ...group[0].labels].map(quoteName).join(':');
      await tx.run(`UNWIND $rows AS row CREATE (n:${labels}) SET n = row.properties, n.${RESTORE_ID} = row.id`, {
        rows: group.map((record) => ({ id: record.id, properties: decodeProperties(record.properties) })),
      });
    }
  });
  for (const record of records) {
    restored.nodes++;
    for (const label of record.labels) restored.nodesByLabel[label] = (restored.nodesByLabel[label] ?? 0) + 1;
  }
}

async function writeRelationships(session: Session, records: RelationshipRecord[], restored: GraphRestoreResult): Promise<void> {
  const byType = groupBy(records, (record) => record.type);
  await session.executeWrite(async (tx) => {
    for (const [type, group] of byType) {
      const result = await tx.run(
        `UNWIND $rows AS row
         MATCH (start:${RESTORE_LABEL} {${RESTORE_ID}: row.start})
         MATCH (end:${RESTORE_LABEL} {${RESTORE_ID}: row.end})
         CREATE (start)-[r:${quoteName(type)}]->(end) SET r = row.properties
         RETURN count(r) AS created`,
        { rows: group.map((record) => ({ start: record.start, end: record.end, properties: decodeProperties(record.properties) })) },
      );
      const created = num(result.records[0].get('created'));
      if (created !== group.length) {
        throw new Error(`${group.length - created} of ${group.length} ${type} relationships name nodes that are not in the export`);
      }
    }
  });
  for (const record of records) {
    restored.relationships++;
    restored.relationshipsByType[record.type] = (restored.relationshipsByType[record.type] ?? 0) + 1;
  }
}

/** Runs the exported CREATE INDEX / CONSTRAINT statements; ones the target already has are skipped. */
async function replaySchema(session: Session, statements: string[]): Promise<number> {
  let applied = 0;
  for (const statement of statements) {
    if (!SCHEMA_STATEMENT.test(statement)) throw new Error(`schema record is not an index or constraint creation: ${statement}`);
    try {
      await session.run(statement);
      applied++;
    } catch (error) {
      if (!/AlreadyExists/.test((error as { code?: string }).code ?? '')) throw error;
    }
  }
  if (applied > 0) await session.run('CALL db.awaitIndexes(300)');
  return applied;
}

function describeCountMismatch(manifest: GraphExportManifest, restored: GraphCountsByKind): string | null {
  const problems: string[] = [];
  if (restored.nodes !== manifest.nodes) problems.push(`${restored.nodes} nodes, manifest ${manifest.nodes}`);
  if (restored.relationships !== manifest.relationships) {
    problems.push(`${restored.relationships} relationships, manifest ${manifest.relationships}`);
  }
  const compare = (what: string, actual: Record<string, number>, expected: Record<string, number>) => {
    for (const key of new Set([...Object.keys(actual), ...Object.keys(expected)])) {
      if ((actual[key] ?? 0) !== (expected[key] ?? 0)) problems.push(`${what} ${key}: ${actual[key] ?? 0}, manifest ${expected[key] ?? 0}`);
    }
  };
  compare('label', restored.nodesByLabel, manifest.nodes_by_label);
  compare('type', restored.relationshipsByType, manifest.relationships_by_type);
  return problems.length > 0 ? problems.join('; ') : null;
}

function quoteName(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

function encodeProperties(properties: Record<string, unknown>): EncodedProperties {
  const encoded: EncodedProperties = {};
  for (const [key, value] of Object.entries(properties)) {
    try {
      encoded[key] = encodeValue(value);
    } catch (error) {
      throw new Error(`property ${key}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return encoded;
}

function decodeProperties(properties: EncodedProperties): Record<string, unknown> {
  const decoded: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(properties)) decoded[key] = decodeValue(value);
  return decoded;
}

/** Neo4j property value (as neo4j-driver returns it) → JSON that keeps its exact type. */
export function encodeValue(value: unknown): EncodedValue {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    // JSON has no NaN/Infinity and prints -0 as 0; plain JSON numbers are always floats.
    return Number.isFinite(value) && !Object.is(value, -0) ? value : { $float: Object.is(value, -0) ? '-0' : String(value) };
  }
  if (neo4j.isInt(value)) return { $int: value.toString() };
  if (value instanceof Int8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(encodeValue);
  if (neo4j.isDate(value)) return { $date: { year: num(value.year), month: num(value.month), day: num(value.day) } };
  if (neo4j.isLocalTime(value)) return { $localtime: timeOfDay(value) };
  if (neo4j.isTime(value)) return { $time: { ...timeOfDay(value), offsetSeconds: num(value.timeZoneOffsetSeconds) } };
  if (neo4j.isLocalDateTime(value)) return { $localdatetime: dateAndTime(value) };
  if (neo4j.isDateTime(value)) {
    return {
      $datetime: {
        ...dateAndTime(value),
        offsetSeconds: value.timeZoneOffsetSeconds === undefined ? null : num(value.timeZoneOffsetSeconds),
        zoneId: value.timeZoneId ?? null,
      },
    };
  }
  if (neo4j.isDuration(value)) {
    return {
      $duration: {
        months: String(value.months),
        days: String(value.days),
        seconds: String(value.seconds),
        nanoseconds: String(value.nanoseconds),
      },
    };
  }
  if (neo4j.isPoint(value)) {
    const point = { srid: num(value.srid), x: value.x, y: value.y };
    return { $point: value.z === undefined ? point : { ...point, z: value.z } };
  }
  const kind = (value as object | null)?.constructor?.name ?? typeof value;
  throw new Error(`unsupported Neo4j property type ${kind}`);
}

/** JSON from encodeValue → the neo4j-driver value that writes the same Neo4j type. */
export function decodeValue(value: EncodedValue): unknown {
  if (typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(decodeValue);
  const T = neo4j.types;
  if ('$int' in value) return neo4j.int(value.$int);
  if ('$float' in value) return value.$float === '-0' ? -0 : Number(value.$float);
  if ('$bytes' in value) return new Int8Array(Buffer.from(value.$bytes, 'base64'));
  if ('$date' in value) return new T.Date(value.$date.year, value.$date.month, value.$date.day);
  if ('$localtime' in value) {
    const t = value.$localtime;
    return new T.LocalTime(t.hour, t.minute, t.second, t.nanosecond);
  }
  if ('$time' in value) {
    const t = value.$time;
    return new T.Time(t.hour, t.minute, t.second, t.nanosecond, t.offsetSeconds);
  }
  if ('$localdatetime' in value) {
    const d = value.$localdatetime;
    return new T.LocalDateTime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.nanosecond);
  }
  if ('$datetime' in value) {
    const d = value.$datetime;
    return new T.DateTime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.nanosecond, d.offsetSeconds ?? undefined, d.zoneId ?? undefined);
  }
  if ('$duration' in value) {
    const d = value.$duration;
    return new T.Duration(neo4j.int(d.months), neo4j.int(d.days), neo4j.int(d.seconds), neo4j.int(d.nanoseconds));
  }
  if ('$point' in value) {
    const p = value.$point;
    return new T.Point(p.srid, p.x, p.y, p.z);
  }
  throw new Error(`unknown encoded value ${JSON.stringify(value)}`);
}

/** Counts and temporal fields arrive as neo4j Integers; all of them fit a JS number. */
function num(value: Integer | number): number {
  return neo4j.isInt(value) ? (value as Integer).toNumber() : (value as number);
}

function timeOfDay(value: { hour: Integer | number; minute: Integer | number; second: Integer | number; nanosecond: Integer | number }): TimeOfDay {
  return { hour: num(value.hour), minute: num(value.minute), second: num(value.second), nanosecond: num(value.nanosecond) };
}

function dateAndTime(
  value: Parameters<typeof timeOfDay>[0] & { year: Integer | number; month: Integer | number; day: Integer | number },
): DateAndTime {
  return { year: num(value.year), month: num(value.month), day: num(value.day), ...timeOfDay(value) };
}
