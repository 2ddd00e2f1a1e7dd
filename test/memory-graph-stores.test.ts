/**
 * The memorygraph store adapters on real stores, without a workflow: the pairs
 * the end-to-end tests do not run (Neo4j ⇄ FalkorDB), memorygraph's value
 * types kept in both graph stores, SQLite's FTS index kept in step, idempotent
 * writes, and memorygraph's older SQLite layout read but never written.
 */
import Database from 'better-sqlite3';
import neo4j from 'neo4j-driver';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asRelationship, memoryPoint, relationshipPoint, scan, withEndsInTarget, type GraphStore } from '../activities/memorygraph/graph-store';
import { bringInLine, diffStreamed, printsOf } from '../activities/memorygraph/sync';
import type { MemoryPoint } from '../activities/stores/contract';
import { openFalkorStore } from '../activities/stores/falkordb';
import { openNeo4jDriver } from '../activities/stores/neo4j';
import { openNeo4jGraphStore } from '../activities/stores/memorygraph-neo4j';
import { MemorygraphSqliteStore, inspectSqliteLayout } from '../activities/stores/memorygraph-sqlite';
import { startTestFalkorDB, type TestFalkorDB } from './support/falkordb';
import { tempDir } from './support/harness';
import { dumpWithMemorygraph, populateWithMemorygraph } from './support/memorygraph';
import { startTestNeo4j, type TestNeo4j } from './support/neo4j';

let falkor: TestFalkorDB;
let neo: TestNeo4j;
const dir = tempDir();
const sourcePath = path.join(dir, 'memory.db');
const nothingKept = () => ({ memories: new Set<string>(), relationships: new Set<string>() });

beforeAll(async () => {
  [falkor, neo] = await Promise.all([startTestFalkorDB(), startTestNeo4j()]);
  await populateWithMemorygraph({ kind: 'sqlite', path: sourcePath }, { memories: 30, relationships: 80, seed: 'stores' });
});

afterAll(async () => {
  await falkor?.stop();
  await neo?.stop();
});

async function using<T>(stores: GraphStore[], use: () => Promise<T>): Promise<T> {
  try {
    return await use();
  } finally {
    for (const store of stores) await store.close();
  }
}

describe('SQLite → Neo4j → FalkorDB → SQLite', () => {
  it('arrives equal, and memorygraph reads the last SQLite file exactly as the first', async () => {
    const source = MemorygraphSqliteStore.openReadOnly(sourcePath);
    const graph = await openNeo4jGraphStore({ uri: neo.uri }, true);
    const falkorStore = await openFalkorStore({ url: falkor.url, graph: 'chain' }, true);
    const last = path.join(dir, 'last.db');
    const back = MemorygraphSqliteStore.openWritable(last);
    await using([source, graph, falkorStore, back], async () => {
      await graph.prepareSchema();
      await falkorStore.prepareSchema();
      expect((await bringInLine(source, graph, nothingKept())).written).toBe(110);
      expect((await bringInLine(graph, falkorStore, nothingKept())).written).toBe(110);
      expect((await bringInLine(falkorStore, back, nothingKept())).written).toBe(110);
      // A second pass finds nothing to do: every write was idempotent and exact.
      expect(await bringInLine(source, graph, nothingKept())).toEqual({ written: 0, removed: 0, keptNewer: 0 });
      expect(await bringInLine(graph, falkorStore, nothingKept())).toEqual({ written: 0, removed: 0, keptNewer: 0 });
      const [a, b] = [await printsOf(source), await printsOf(back)];
      expect(b.memories).toEqual(a.memories);
      expect(b.relationships).toEqual(a.relationships);
    });
    expect(await dumpWithMemorygraph({ kind: 'sqlite', path: last })).toEqual(await dumpWithMemorygraph({ kind: 'sqlite', path: sourcePath }));
  });
});

describe('the relationships copy under a live service', () => {
  it('copies the ends a relationship needs that arrived after the memories were copied, and leaves one whose end is gone', async () => {
    const file = path.join(dir, 'live-ends.db');
    await populateWithMemorygraph({ kind: 'sqlite', path: file }, { memories: 30, relationships: 60, seed: 'ends' });
    const target = await openFalkorStore({ url: falkor.url, graph: 'ends' }, true);
    await target.prepareSchema();
    let source = MemorygraphSqliteStore.openReadOnly(file);
    for await (const page of scan(source, 'memories', 100)) await target.upsert('memories', page.map((m) => target.shape('memories', m)));
    await source.close();
    // The service goes on: new memories, linked to each other and to old ones, after the memories' copy.
    await populateWithMemorygraph({ kind: 'sqlite', path: file }, { memories: 3, relationships: 12, seed: 'ends', offset: 30 });
    source = MemorygraphSqliteStore.openReadOnly(file);
    await using([source, target], async () => {
      const copied = new Set((await printsOf(target)).memories.keys());
      const relationships: MemoryPoint[] = [];
      for await (const page of scan(source, 'relationships', 100)) relationships.push(...page.map((r) => target.shape('relationships', r)));
      const needsNewEnd = relationships.filter((r) => !copied.has(asRelationship(r).from) || !copied.has(asRelationship(r).to));
      expect(needsNewEnd.length).toBeGreaterThan(0);

      // Written as read, those relationships do not land: their ends are not in the graph.
      await target.upsert('relationships', relationships);
      expect((await printsOf(target)).relationships.size).toBe(relationships.length - needsNewEnd.length);

      const gone = { ...relationships[0], id: 'edge-to-a-deleted-memory', payload: { ...relationships[0].payload, to: 'a-memory-deleted-since' } };
      const kept = await withEndsInTarget(source, target, [...relationships, gone]);
      expect(kept.map((r) => r.id)).toEqual(relationships.map((r) => r.id));
      await target.upsert('relationships', kept);
      expect(await printsOf(target)).toEqual(await printsOf(source));
    });
  });
});

describe("memorygraph's value types", () => {
  const memory = memoryPoint({ id: 'typed', type: 'general', title: 't', content: 'c', importance: 1.0, confidence: 0, usage_count: 3, tags: ['a'], created_at: '2024-01-01T00:00:00+00:00' });
  const other = memoryPoint({ id: 'other', type: 'general', title: 'o', content: 'c' });
  const edge = relationshipPoint('typed-edge', 'SOLVES', 'typed', 'other', { strength: 1.0, evidence_count: 2, valid_from: '2024-01-01T00:00:00+00:00' });

  it('Neo4j stores integer fields as integers and the others as floats, even 1.0', async () => {
    const store = await openNeo4jGraphStore({ uri: neo.uri }, true);
    await using([store], async () => {
      await store.upsert('memories', [memory, other]);
      await store.upsert('relationships', [edge]);
      await store.upsert('relationships', [edge]);
    });
    const driver = openNeo4jDriver(neo.uri);
    const { records } = await driver.executeQuery(
      "MATCH (m:Memory {id: 'typed'})-[r]->() RETURN m.usage_count AS usage, m.importance AS importance, m.confidence AS confidence, r.evidence_count AS evidence, r.strength AS strength, count(r) AS edges",
    );
    await driver.close();
    const row = records[0];
    expect(neo4j.isInt(row.get('usage'))).toBe(true);
    expect(neo4j.isInt(row.get('evidence'))).toBe(true);
    for (const field of ['importance', 'confidence', 'strength']) expect(neo4j.isInt(row.get(field))).toBe(false);
    expect(neo4j.integer.toNumber(row.get('edges'))).toBe(1);
  });

  it('FalkorDB does the same', async () => {
    const store = await openFalkorStore({ url: falkor.url, graph: 'typed' }, true);
    await using([store], async () => {
      await store.upsert('memories', [memory, other]);
      await store.upsert('relationships', [edge]);
      await store.upsert('relationships', [edge]);
    });
    const { FalkorDB } = await import('falkordb');
    const db = await FalkorDB.connect({ socket: { host: '127.0.0.1', port: falkor.port } });
    const reply = await db
      .selectGraph('typed')
      .roQuery<Record<string, unknown>>("MATCH (m:Memory {id: 'typed'})-[r]->() RETURN typeOf(m.usage_count) AS usage, typeOf(m.importance) AS importance, typeOf(r.evidence_count) AS evidence, typeOf(r.strength) AS strength, count(r) AS edges");
    await db.close();
    expect(reply.data?.[0]).toEqual({ usage: 'Integer', importance: 'Float', evidence: 'Integer', strength: 'Float', edges: 1 });
  });
});

describe('FalkorDB errors', () => {
  it('never quote the query, which carries memory contents', async () => {
    const store = await openFalkorStore({ url: falkor.url, graph: 'refusing' }, true);
    await using([store], async () => {
      // A map is no property value FalkorDB can store: the server refuses the whole query.
      const refused = await store.upsert('memories', [memoryPoint({ id: 'm', content: 'TOP-SECRET-CONTENT', nested: { deeper: 'TOP-SECRET-CONTENT' } })]).catch((e: Error) => e);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error & { type?: string }).type).toBe('FalkorDBQueryFailed');
      expect((refused as Error).message).not.toContain('TOP-SECRET');
    });
  });
});

describe('Neo4j errors', () => {
  it('are classified by code and never quote the value', async () => {
    const store = await openNeo4jGraphStore({ uri: neo.uri }, true);
    await using([store], async () => {
      const refused = await store.upsert('memories', [memoryPoint({ id: 'm', content: 'TOP-SECRET-CONTENT', nested: { deeper: 'TOP-SECRET-CONTENT' } })]).catch((e: Error) => e);
      expect((refused as Error & { type?: string }).type).toBe('Neo4jQueryFailed');
      expect((refused as Error).message).toMatch(/Neo\.ClientError\./);
      expect((refused as Error).message).not.toContain('TOP-SECRET');
    });
  });
});

describe('SQLite', () => {
  it('keeps nodes_fts in step with every memory it writes, rewrites and removes', async () => {
    const file = path.join(dir, 'fts.db');
    const store = MemorygraphSqliteStore.openWritable(file);
    const fts = new Database(file, { readonly: true });
    const matches = (word: string) => (fts.prepare('SELECT rowid FROM nodes_fts WHERE nodes_fts MATCH ?').all(word) as unknown[]).length;
    await using([store], async () => {
      await store.upsert('memories', [memoryPoint({ id: 'm1', title: 'alpha mémoire', content: 'first' }), memoryPoint({ id: 'm2', title: 'beta', content: 'second' })]);
      expect([matches('alpha'), matches('mémoire'), matches('second')]).toEqual([1, 1, 1]);
      await store.upsert('memories', [memoryPoint({ id: 'm1', title: 'gamma', content: 'first' })]);
      await store.upsert('memories', [memoryPoint({ id: 'm1', title: 'gamma', content: 'first' })]);
      expect([matches('alpha'), matches('gamma'), matches('first')]).toEqual([0, 1, 1]);
      await store.remove('memories', ['m2']);
      expect(matches('second')).toBe(0);
    });
    fts.close();
  });

  it("reads memorygraph's pre-bitemporal layout and refuses to write it", async () => {
    const file = path.join(dir, 'old.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE nodes (id TEXT PRIMARY KEY, label TEXT NOT NULL, properties TEXT NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP);
             CREATE TABLE relationships (id TEXT PRIMARY KEY, from_id TEXT NOT NULL, to_id TEXT NOT NULL, rel_type TEXT NOT NULL, properties TEXT NOT NULL, created_at TIMESTAMP);
             INSERT INTO nodes VALUES ('a', 'Memory', '{"id":"a","title":"t"}', '2024-01-01 00:00:00', '2024-01-01 00:00:00');`);
    expect(inspectSqliteLayout(db)).toEqual({ layout: 'memorygraph-pre-bitemporal', missing: [], fts: false });
    db.close();
    const store = MemorygraphSqliteStore.openReadOnly(file);
    expect((await store.counts()).memories).toBe(1);
    await store.close();
    expect(() => MemorygraphSqliteStore.openWritable(file)).toThrow(/older SQLite layout/);
  });
});

describe('validation, streamed', () => {
  // More than a page (PAGE = 1000) of everything, laid out to cross every cursor case:
  // a memory with more relationships than a page, more than a window of memories with none, ids whose order differs from their start memories'.
  const memories = Array.from({ length: 2600 }, (_, i) => memoryPoint({ id: `m-${String(i).padStart(5, '0')}`, type: 'general', title: `t${i}`, content: 'c' }));
  const edges = [
    ...Array.from({ length: 1500 }, (_, k) => relationshipPoint(`hub-${String(k).padStart(4, '0')}`, 'RELATED_TO', 'm-00000', `m-${String(1 + (k % 900)).padStart(5, '0')}`, { strength: 0.5 })),
    ...Array.from({ length: 900 * 3 }, (_, n) => {
      const [i, k] = [1 + Math.floor(n / 3), n % 3];
      return relationshipPoint(`e-${String((i * 7919) % 10007).padStart(5, '0')}-${k}`, 'SOLVES', `m-${String(i).padStart(5, '0')}`, `m-${String(2300 + k).padStart(5, '0')}`, { strength: 0.9 });
    }),
    ...Array.from({ length: 300 }, (_, n) => relationshipPoint(`z-${n}`, 'CAUSES', `m-${String(2300 + n).padStart(5, '0')}`, 'm-00001', {})),
  ];

  /** A store whose reads are logged in order, to see how the comparison interleaves the two sides. */
  function logged(store: GraphStore, side: string, log: string[]): GraphStore {
    return new Proxy(store, {
      get: (target, key) => (key === 'read' ? (entity: 'memories' | 'relationships', cursor: string | null, limit: number) => (log.push(`${side} ${entity}`), target.read(entity, cursor, limit)) : Reflect.get(target, key, target)),
    });
  }

  it('pages both sides side by side and names each difference, on SQLite, Neo4j and FalkorDB', async () => {
    const source = MemorygraphSqliteStore.openWritable(path.join(dir, 'streamed.db'));
    const targets = [await openNeo4jGraphStore({ uri: neo.uri }, true), await openFalkorStore({ url: falkor.url, graph: 'streamed' }, true), MemorygraphSqliteStore.openWritable(path.join(dir, 'streamed-target.db'))];
    await using([source, ...targets], async () => {
      await source.upsert('memories', memories);
      await source.upsert('relationships', edges);
      for (const target of targets) {
        if ('prepareSchema' in target) await (target as { prepareSchema(): Promise<void> }).prepareSchema();
        expect((await bringInLine(source, target, nothingKept())).written).toBe(memories.length + edges.length);
        const log: string[] = [];
        const same = await diffStreamed(logged(source, 'source', log), logged(target, 'target', log), 'relationships', new Set());
        expect(same).toMatchObject({ missing: [], different: [], extra: [], sourceCount: edges.length, targetCount: edges.length });
        // Streamed: the target is read while the source still has pages to give (a whole-side read would finish the source first).
        expect(log.indexOf('target relationships')).toBeLessThan(log.lastIndexOf('source relationships'));

        await target.remove('relationships', ['hub-1200', 'e-09574-1']);
        await target.upsert('relationships', [relationshipPoint('z-7', 'CAUSES', 'm-02307', 'm-00001', { strength: 0.1 }), relationshipPoint('kept', 'CAUSES', 'm-02599', 'm-00001', {}), relationshipPoint('added', 'CAUSES', 'm-01500', 'm-00002', {})]);
        const diff = await diffStreamed(source, target, 'relationships', new Set(['kept']));
        expect(diff).toMatchObject({ missing: ['hub-1200', 'e-09574-1'], different: ['z-7'], extra: ['added'], kept: 1, sourceCount: edges.length, targetCount: edges.length });
        expect(await bringInLine(source, target, { memories: new Set(), relationships: new Set(['kept']) })).toEqual({ written: 3, removed: 1, keptNewer: 0 });
      }
    });
  });
});
