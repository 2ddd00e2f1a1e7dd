/**
 * memoryGraphMigration with a real Neo4j (the in-process 5.26 harness): a
 * store memorygraph itself wrote in Neo4j (native DATETIME bi-temporal
 * fields) moved to SQLite, and a SQLite store moved to Neo4j — each read back
 * through memorygraph's own backends, ids and timestamps kept.
 */
import type { Client } from '@temporalio/client';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNeo4jDriver } from '../activities/stores/neo4j';
import { approveUpdate } from '../workflows/messages';
import { memoryGraphMigration, type MemoryGraphPlanInput } from '../workflows/memory-graph-migration';
import { activityAttempts, connectClient, failureMessage, failureType, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { dumpWithMemorygraph, populateWithMemorygraph, type MemorygraphDump } from './support/memorygraph';
import { startTestFalkorDB } from './support/falkordb';
import { startTestNeo4j, type TestNeo4j } from './support/neo4j';

let client: Client;
let worker: { stop(): Promise<void> };
let neo: TestNeo4j;
const taskQueue = uniqueQueue('memorygraph-neo4j');
const dir = tempDir();
let counter = 0;
const unique = (name: string) => `${name}-${Date.now().toString(36)}-${counter++}`;

beforeAll(async () => {
  [client, neo] = await Promise.all([connectClient(), startTestNeo4j()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await neo?.stop();
});

async function clearNeo4j(): Promise<void> {
  const driver = openNeo4jDriver(neo.uri);
  await driver.executeQuery('MATCH (n) DETACH DELETE n');
  await driver.close();
}

async function migrate(source: MemoryGraphPlanInput['source'], target: MemoryGraphPlanInput['target']) {
  const handle = await client.workflow.start(memoryGraphMigration, {
    taskQueue,
    workflowId: unique('mg-neo4j'),
    args: [{ source, target, workDir: path.join(dir, 'runs'), copy: { batchSize: 40, concurrency: 2 }, cutover: { file: path.join(dir, `${unique('live')}.json`) } }],
  });
  const waiting = await waitForPhase(handle, 'await-approval');
  expect(waiting.report?.ok).toBe(true);
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  return handle.result();
}

/**
 * Timestamps as instants: Neo4j's driver prints a DATETIME differently from
 * Python's isoformat(). Traversal counts are left out: memorygraph 0.12.4's
 * Neo4j get_related_memories fails on every store, its own included.
 */
function normalised(dump: MemorygraphDump) {
  return {
    memories: dump.memories,
    relationships: dump.relationships.map((r) => ({ ...r, valid_from: Date.parse(r.valid_from.replace(/(\.\d{3})\d*/, '$1')) })),
  };
}

/** memorygraph traverses the SQLite side: every memory has related memories. */
const traversable = (dump: MemorygraphDump) => Object.values(dump.related).every((n) => typeof n === 'number' && n > 0);

describe('Neo4j ⇄ SQLite', () => {
  it('moves a store memorygraph wrote in Neo4j to SQLite, and memorygraph reads the same memories, relationship ids and valid_from', async () => {
    await clearNeo4j();
    const neo4jBackend = { kind: 'neo4j' as const, uri: neo.uri };
    await populateWithMemorygraph(neo4jBackend, { memories: 40, relationships: 90, seed: 'neo' });
    const before = await dumpWithMemorygraph(neo4jBackend);
    expect(before.relationships).toHaveLength(90);

    const file = path.join(dir, 'from-neo4j.db');
    const result = await migrate({ kind: 'neo4j', uri: neo.uri }, { kind: 'sqlite', path: file });
    expect([result.outcome, result.memories, result.relationships]).toEqual(['cut-over', 40, 90]);
    const after = await dumpWithMemorygraph({ kind: 'sqlite', path: file });
    expect(normalised(after)).toEqual(normalised(before));
    expect(traversable(after)).toBe(true);
  });

  it('moves a SQLite store to Neo4j, and memorygraph reads it there as it read it in SQLite', async () => {
    await clearNeo4j();
    const file = path.join(dir, 'source.db');
    await populateWithMemorygraph({ kind: 'sqlite', path: file }, { memories: 50, relationships: 120, seed: 'sql' });
    const before = await dumpWithMemorygraph({ kind: 'sqlite', path: file });
    expect(traversable(before)).toBe(true);

    const result = await migrate({ kind: 'sqlite', path: file }, { kind: 'neo4j', uri: neo.uri });
    expect([result.outcome, result.memories, result.relationships]).toEqual(['cut-over', 50, 120]);
    const after = await dumpWithMemorygraph({ kind: 'neo4j', uri: neo.uri });
    expect(normalised(after)).toEqual(normalised(before));
  });
});

describe('Neo4j → FalkorDB', () => {
  it('moves the Neo4j store to FalkorDB with every memory and relationship (validated by fingerprint)', async () => {
    await clearNeo4j();
    const file = path.join(dir, 'for-falkordb.db');
    await populateWithMemorygraph({ kind: 'sqlite', path: file }, { memories: 30, relationships: 70, seed: 'nf' });
    await migrate({ kind: 'sqlite', path: file }, { kind: 'neo4j', uri: neo.uri });
    const falkor = await startTestFalkorDB();
    try {
      const result = await migrate({ kind: 'neo4j', uri: neo.uri }, { kind: 'falkordb', url: falkor.url, graph: 'memorygraph' });
      expect([result.outcome, result.memories, result.relationships]).toEqual(['cut-over', 30, 70]);
      const after = await dumpWithMemorygraph({ kind: 'falkordb', port: falkor.port });
      const before = await dumpWithMemorygraph({ kind: 'sqlite', path: file });
      expect(normalised(after)).toEqual(normalised(before));
    } finally {
      await falkor.stop();
    }
  });
});

describe('an unreachable Neo4j', () => {
  it('fails preflight once, naming the problem, and writes nothing', async () => {
    const target = path.join(dir, 'never.db');
    const handle = await client.workflow.start(memoryGraphMigration, {
      taskQueue,
      workflowId: unique('mg-neo4j-down'),
      args: [{ source: { kind: 'neo4j', uri: 'bolt://127.0.0.1:1' }, target: { kind: 'sqlite', path: target }, workDir: path.join(dir, 'runs'), cutover: { file: path.join(dir, 'live-down.json') } }],
    });
    expect(await failureType(handle)).toBe('Neo4jUnreachable');
    expect(await activityAttempts(handle, 'preflightMemoryGraph')).toBe(1);
    expect(existsSync(target)).toBe(false);
  });
});

describe('a Neo4j that refuses the credentials', () => {
  it("fails preflight once with Neo4jUnauthorized, repeats no password, and writes nothing", async () => {
    const guarded = await startTestNeo4j({ withAuth: true });
    const saved = { user: process.env.NEO4J_USER, password: process.env.NEO4J_PASSWORD };
    Object.assign(process.env, { NEO4J_USER: 'neo4j', NEO4J_PASSWORD: 'wrong-secret' });
    const target = path.join(dir, 'never-written.db');
    try {
      const handle = await client.workflow.start(memoryGraphMigration, {
        taskQueue,
        workflowId: unique('mg-neo4j-auth'),
        args: [{ source: { kind: 'neo4j', uri: guarded.uri }, target: { kind: 'sqlite', path: target }, workDir: path.join(dir, 'runs'), cutover: { file: path.join(dir, 'live-auth.json') } }],
      });
      expect(await failureType(handle)).toBe('Neo4jUnauthorized');
      expect(await failureMessage(handle)).toMatch(/refused the credentials.*set NEO4J_USER \/ NEO4J_PASSWORD/);
      expect(await activityAttempts(handle, 'preflightMemoryGraph')).toBe(1);
      expect(JSON.stringify(await handle.fetchHistory())).not.toContain('wrong-secret');
      expect(existsSync(target)).toBe(false);
    } finally {
      for (const [key, value] of [['NEO4J_USER', saved.user], ['NEO4J_PASSWORD', saved.password]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      await guarded.stop();
    }
  });
});
