/**
 * Every backend pair of memoryGraphMigration that the other memory-graph test
 * files do not run already (they cover SQLite ⇄ FalkorDB, SQLite ⇄ Neo4j,
 * Neo4j → FalkorDB and SQLite ⇄ both export formats), each as the real
 * workflow on one Temporal worker, one Neo4j and one FalkorDB, on stores
 * memorygraph 0.12.4 wrote itself (FalkorDB through a SQLite store memorygraph
 * wrote, as memorygraph cannot create relationships there; 13 memory types, all 35 relationship
 * types, cycles, unicode, back-dated created_at, valid_from, recorded_at,
 * valid_until and invalidated_by).
 *
 * The target is read back through memorygraph's own backends and must show
 * exactly what memorygraph read from the source: memory ids, types, titles,
 * created_at/updated_at, relationship ids, ends, types, valid_from,
 * invalidated_by. memorygraph reads no export file losslessly (its import
 * resets times and ids), so a file target is moved on into a new SQLite file
 * by the workflow and read there.
 */
import type { Client } from '@temporalio/client';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNeo4jDriver } from '../activities/stores/neo4j';
import { approveUpdate } from '../workflows/messages';
import { memoryGraphMigration, type MemoryGraphPlanInput } from '../workflows/memory-graph-migration';
import { startTestFalkorDB, type TestFalkorDB } from './support/falkordb';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { dumpWithMemorygraph, populateWithMemorygraph, type MemorygraphBackend, type MemorygraphDump } from './support/memorygraph';
import { startTestNeo4j, type TestNeo4j } from './support/neo4j';

type Endpoint = MemoryGraphPlanInput['source'];
type Kind = 'sqlite' | 'neo4j' | 'falkordb' | 'memorygraph-2.0' | 'memshift-jsonl';

const MEMORIES = 40;
const RELATIONSHIPS = 105; // three of each of the 35 types

let client: Client;
let worker: { stop(): Promise<void> };
let neo: TestNeo4j;
let falkor: TestFalkorDB;
const taskQueue = uniqueQueue('memorygraph-pairs');
const dir = tempDir();
let counter = 0;
const unique = (name: string) => `${name}-${Date.now().toString(36)}-${counter++}`;

/** Each source endpoint, the memory ids memorygraph wrote, and what memorygraph read from it. */
const sources = {} as Record<Kind, { endpoint: Endpoint; ids: string[]; dump: MemorygraphDump }>;

async function migrate(source: Endpoint, target: Endpoint) {
  const handle = await client.workflow.start(memoryGraphMigration, {
    taskQueue,
    workflowId: unique('mg-pair'),
    args: [{
      source,
      target,
      workDir: path.join(dir, 'runs'),
      copy: { batchSize: 25, concurrency: 2 },
      ...(target.kind === 'export-file' ? {} : { cutover: { file: path.join(dir, `${unique('live')}.json`) } }),
    }],
  });
  const waiting = await waitForPhase(handle, 'await-approval');
  expect(waiting.report?.ok).toBe(true);
  // Preflight names the relationship count of every type.
  expect(waiting.notes).toContainEqual(expect.stringMatching(/105 relationships of 35 types: .*\bSOLVES 3\b/));
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  const result = await handle.result();
  expect([result.outcome, result.memories, result.relationships]).toEqual(['cut-over', MEMORIES, RELATIONSHIPS]);
}

function newTarget(kind: Kind): Endpoint {
  switch (kind) {
    case 'sqlite':
      return { kind, path: path.join(dir, `${unique('target')}.db`) };
    case 'neo4j':
      return { kind, uri: neo.uri };
    case 'falkordb':
      return { kind, url: falkor.url, graph: unique('target') };
    default:
      return { kind: 'export-file', path: path.join(dir, `${unique('target')}.${kind === 'memshift-jsonl' ? 'jsonl' : 'json'}`), format: kind };
  }
}

/** memorygraph's own reading of a store; an export file is first moved into a new SQLite file by the workflow. */
async function readBack(endpoint: Endpoint, ids: string[]): Promise<MemorygraphDump> {
  let backend: MemorygraphBackend;
  switch (endpoint.kind) {
    case 'sqlite':
      backend = { kind: 'sqlite', path: endpoint.path };
      break;
    case 'neo4j':
      backend = { kind: 'neo4j', uri: endpoint.uri };
      break;
    case 'falkordb':
      backend = { kind: 'falkordb', port: falkor.port, graph: endpoint.graph };
      break;
    case 'export-file': {
      const sqlite = newTarget('sqlite');
      await migrate(endpoint, sqlite);
      return readBack(sqlite, ids);
    }
  }
  return dumpWithMemorygraph(backend, ids);
}

/**
 * Timestamps compared as instants (Neo4j's driver prints a DATETIME unlike
 * Python's isoformat()); traversal counts left out (memorygraph 0.12.4's
 * graph backends fail its own traversal query on every store).
 */
function normalised(dump: MemorygraphDump) {
  return {
    memories: dump.memories,
    relationships: dump.relationships.map((r) => ({ ...r, valid_from: Date.parse(r.valid_from.replace(/(\.\d{3})\d*/, '$1')) })),
  };
}

async function clearNeo4j(): Promise<void> {
  const driver = openNeo4jDriver(neo.uri);
  await driver.executeQuery('MATCH (n) DETACH DELETE n');
  await driver.close();
}

/** memorygraph writes `memories`/`relationships` into `backend`, then reads them back: the expected content. */
async function written(endpoint: Endpoint, backend: MemorygraphBackend, seed: string) {
  const { memories } = await populateWithMemorygraph(backend, { memories: MEMORIES, relationships: RELATIONSHIPS, seed });
  const dump = await dumpWithMemorygraph(backend, memories);
  // The fixture is what makes these pairs meaningful: fail loudly if it ever shrinks.
  expect(Object.values(dump.memories).filter(Boolean)).toHaveLength(MEMORIES);
  expect(new Set(Object.values(dump.memories).map((m) => m!.type)).size).toBe(13);
  expect(dump.relationships).toHaveLength(RELATIONSHIPS);
  expect(new Set(dump.relationships.map((r) => r.type)).size).toBe(35);
  const back = new Set(dump.relationships.map((r) => `${r.to}>${r.from}`));
  expect(dump.relationships.some((r) => back.has(`${r.from}>${r.to}`))).toBe(true); // a cycle
  return { endpoint, ids: memories, dump };
}

beforeAll(async () => {
  [client, neo, falkor] = await Promise.all([connectClient(), startTestNeo4j(), startTestFalkorDB()]);
  worker = await startWorker(taskQueue);
  const sqlite = { kind: 'sqlite' as const, path: path.join(dir, 'source.db') };
  const forFalkor = { kind: 'sqlite' as const, path: path.join(dir, 'for-falkordb.db') };
  let forFalkorWritten: (typeof sources)['sqlite'];
  [sources.sqlite, forFalkorWritten, sources.neo4j] = await Promise.all([
    written(sqlite, sqlite, 'sq'),
    written(forFalkor, forFalkor, 'fk'),
    written({ kind: 'neo4j', uri: neo.uri }, { kind: 'neo4j', uri: neo.uri }, 'neo'),
  ]);
  // memorygraph 0.12.4 cannot create a relationship in FalkorDB (its query fails to parse there): its SQLite store is moved in by
  // memshift (SQLite → FalkorDB is tested in memory-graph-migration), and memorygraph reads it there.
  const falkorSource = { kind: 'falkordb' as const, url: falkor.url, graph: 'source' };
  await migrate(forFalkor, falkorSource);
  const falkorDump = await dumpWithMemorygraph({ kind: 'falkordb', port: falkor.port, graph: 'source' }, forFalkorWritten.ids);
  expect(normalised(falkorDump)).toEqual(normalised(forFalkorWritten.dump));
  sources.falkordb = { endpoint: falkorSource, ids: forFalkorWritten.ids, dump: falkorDump };
  // The export files are memshift's own (SQLite → file is tested in memory-graph-safety): memorygraph's export keeps no relationship ids or times.
  await Promise.all(
    (['memorygraph-2.0', 'memshift-jsonl'] as const).map(async (format) => {
      const file = newTarget(format);
      await migrate(sqlite, file);
      sources[format] = { ...sources.sqlite, endpoint: file };
    }),
  );
}, 600_000);

afterAll(async () => {
  await worker?.stop();
  await Promise.all([neo?.stop(), falkor?.stop()]);
});

async function checkPair(from: Kind, to: Kind): Promise<void> {
  const source = sources[from];
  const target = newTarget(to);
  await migrate(source.endpoint, target);
  expect(normalised(await readBack(target, source.ids))).toEqual(normalised(source.dump));
}

// Neo4j is read here only as a source (one database): these run side by side.
describe.concurrent('pairs that leave Neo4j alone or only read it', () => {
  it.each([
    ['neo4j', 'memorygraph-2.0'],
    ['neo4j', 'memshift-jsonl'],
    ['falkordb', 'memorygraph-2.0'],
    ['falkordb', 'memshift-jsonl'],
    ['memorygraph-2.0', 'falkordb'],
    ['memshift-jsonl', 'falkordb'],
    ['memorygraph-2.0', 'memshift-jsonl'],
    ['memshift-jsonl', 'memorygraph-2.0'],
  ] as [Kind, Kind][])('%s → %s', (from, to) => checkPair(from, to), 300_000);
});

// Neo4j as the target, one after another on an emptied database.
describe('pairs into Neo4j', () => {
  it.each([
    ['falkordb', 'neo4j'],
    ['memorygraph-2.0', 'neo4j'],
    ['memshift-jsonl', 'neo4j'],
  ] as [Kind, Kind][])('%s → %s', async (from, to) => {
    await clearNeo4j();
    await checkPair(from, to);
  }, 300_000);
});
