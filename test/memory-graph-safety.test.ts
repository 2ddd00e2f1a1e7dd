/**
 * memoryGraphMigration's promises, end to end on real parts (Temporal,
 * SQLite, FalkorDB, memorygraph itself): export files as source and target,
 * rollback keeping post-cutover writes, re-runs without duplicate edges, bad
 * input failing fast with nothing written, and no memory content in history.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import Database from 'better-sqlite3';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryPoint, relationshipPoint } from '../activities/memorygraph/graph-store';
import { printsOf } from '../activities/memorygraph/sync';
import { openFalkorStore } from '../activities/stores/falkordb';
import { approveUpdate, rollbackUpdate } from '../workflows/messages';
import { memoryGraphMigration, type MemoryGraphPlanInput } from '../workflows/memory-graph-migration';
import { startTestFalkorDB, type TestFalkorDB } from './support/falkordb';
import { activityAttempts, connectClient, failureMessage, failureType, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { dumpWithMemorygraph, memorygraphCli, populateWithMemorygraph, type MemorygraphDump } from './support/memorygraph';

const MEMORIES = 40;
const RELATIONSHIPS = 100;

let client: Client;
let worker: { stop(): Promise<void> };
let falkor: TestFalkorDB;
const taskQueue = uniqueQueue('memorygraph-safety');
const dir = tempDir();
const sourcePath = path.join(dir, 'memory.db');
let sourceDump: MemorygraphDump;
let counter = 0;
const unique = (name: string) => `${name}-${Date.now().toString(36)}-${counter++}`;

beforeAll(async () => {
  [client, falkor] = await Promise.all([connectClient(), startTestFalkorDB()]);
  await populateWithMemorygraph({ kind: 'sqlite', path: sourcePath }, { memories: MEMORIES, relationships: RELATIONSHIPS });
  sourceDump = await dumpWithMemorygraph({ kind: 'sqlite', path: sourcePath });
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await falkor?.stop();
});

function plan(overrides: Partial<MemoryGraphPlanInput> & Pick<MemoryGraphPlanInput, 'target'>): MemoryGraphPlanInput {
  return {
    source: { kind: 'sqlite', path: sourcePath },
    workDir: path.join(dir, 'runs'),
    copy: { batchSize: 30, concurrency: 2 },
    ...(overrides.target.kind === 'export-file' ? {} : { cutover: { file: path.join(dir, `${unique('live')}.json`) } }),
    ...overrides,
  };
}

const start = (input: unknown) => client.workflow.start(memoryGraphMigration, { taskQueue, workflowId: unique('mg'), args: [input as MemoryGraphPlanInput] });

async function approved(handle: WorkflowHandle<typeof memoryGraphMigration>) {
  const waiting = await waitForPhase(handle, 'await-approval');
  expect(waiting.report?.ok).toBe(true);
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  return handle.result();
}

const falkorTarget = (graph = unique('g')) => ({ kind: 'falkordb' as const, url: falkor.url, graph });

async function falkorCounts(graph: string) {
  const store = await openFalkorStore({ url: falkor.url, graph });
  try {
    return await store.counts();
  } finally {
    await store.close();
  }
}

describe('export files', () => {
  it("writes memorygraph's 2.0 format that `memorygraph import` reads, and reads it back losslessly", async () => {
    const file = path.join(dir, `${unique('export')}.json`);
    const result = await approved(await start(plan({ target: { kind: 'export-file', path: file, format: 'memorygraph-2.0' } })));
    expect([result.outcome, result.memories, result.relationships]).toEqual(['cut-over', MEMORIES, RELATIONSHIPS]);
    const written = JSON.parse(readFileSync(file, 'utf8'));
    expect([written.format_version, written.memory_count, written.relationship_count]).toEqual(['2.0', MEMORIES, RELATIONSHIPS]);
    expect(existsSync(`${file}.memshift-staging.db`)).toBe(false);

    // memorygraph's own import takes it (and, as it always does, resets times and relationship ids).
    const imported = path.join(dir, `${unique('imported')}.db`);
    const output = await memorygraphCli({ kind: 'sqlite', path: imported }, ['import', '--format', 'json', '--input', file]);
    expect(output).toMatch(new RegExp(`${MEMORIES}\\D+memories`));
    expect(Object.keys((await dumpWithMemorygraph({ kind: 'sqlite', path: imported })).memories)).toHaveLength(MEMORIES);

    // memshift reads its own 2.0 file back with every property, id and time.
    const back = path.join(dir, `${unique('back')}.db`);
    await approved(await start(plan({ source: { kind: 'export-file', path: file, format: 'memorygraph-2.0' }, target: { kind: 'sqlite', path: back } })));
    expect(await dumpWithMemorygraph({ kind: 'sqlite', path: back })).toEqual(sourceDump);
  });

  it('writes the lossless JSONL with a manifest and reads it back exactly; a tampered file is refused', async () => {
    const file = path.join(dir, `${unique('export')}.jsonl`);
    await approved(await start(plan({ target: { kind: 'export-file', path: file, format: 'memshift-jsonl' } })));
    const manifest = JSON.parse(readFileSync(`${file}.manifest.json`, 'utf8'));
    expect([manifest.memories, manifest.relationships, Object.keys(manifest.relationships_by_type).length]).toEqual([MEMORIES, RELATIONSHIPS, 35]);

    const back = path.join(dir, `${unique('back')}.db`);
    await approved(await start(plan({ source: { kind: 'export-file', path: file, format: 'memshift-jsonl' }, target: { kind: 'sqlite', path: back } })));
    expect(await dumpWithMemorygraph({ kind: 'sqlite', path: back })).toEqual(sourceDump);

    writeFileSync(file, readFileSync(file, 'utf8').replace('"SOLVES"', '"CAUSES"'));
    const refused = await start(plan({ source: { kind: 'export-file', path: file, format: 'memshift-jsonl' }, target: { kind: 'sqlite', path: path.join(dir, 'never.db') } }));
    expect(await failureType(refused)).toBe('MalformedExportFile');
    expect(existsSync(path.join(dir, 'never.db'))).toBe(false);
  });

  it("reads memorygraph's own export (no relationship ids or times) and keeps each memory's created_at", async () => {
    const file = path.join(dir, `${unique('mg-export')}.json`);
    await memorygraphCli({ kind: 'sqlite', path: sourcePath }, ['export', '--format', 'json', '--output', file]);
    const target = path.join(dir, `${unique('from-mg-export')}.db`);
    const result = await approved(await start(plan({ source: { kind: 'export-file', path: file, format: 'memorygraph-2.0' }, target: { kind: 'sqlite', path: target } })));
    expect(result.memories).toBe(MEMORIES);
    const dump = await dumpWithMemorygraph({ kind: 'sqlite', path: target });
    for (const [id, memory] of Object.entries(sourceDump.memories)) expect(dump.memories[id]?.created_at).toBe(memory!.created_at);
  });
});

describe('rollback after cutover', () => {
  it('carries writes made in FalkorDB after cutover back into the SQLite source, restores the live-backend file, and removes this run\'s writes from FalkorDB', async () => {
    const source = path.join(dir, `${unique('rollback-source')}.db`);
    await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 20, relationships: 40, seed: 'rb' });
    const before = await dumpWithMemorygraph({ kind: 'sqlite', path: source });
    const target = falkorTarget();
    const live = path.join(dir, `${unique('live')}.json`);
    writeFileSync(live, JSON.stringify({ kind: 'sqlite', url: source, name: `sqlite://${source}`, workflowId: 'before' }));
    const handle = await start(plan({ source: { kind: 'sqlite', path: source }, target, cutover: { file: live }, rollbackWindow: '10m', approval: { approvers: ['alice'] } }));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'rollback-window');
    expect(JSON.parse(readFileSync(live, 'utf8')).kind).toBe('falkordb');

    // The service writes to FalkorDB after cutover: a new memory, a new relationship to it, a changed memory.
    const store = await openFalkorStore({ url: falkor.url, graph: target.graph });
    const anyId = Object.keys(before.memories)[0];
    const [existing] = await store.retrieve('memories', [anyId]);
    const fresh = memoryPoint({ id: 'post-cutover-memory', type: 'solution', title: 'written after cutover', content: 'x', tags: [], importance: 0.5, confidence: 0.8, usage_count: 0, created_at: '2026-01-01T00:00:00+00:00', updated_at: '2026-01-01T00:00:00+00:00' });
    await store.upsert('memories', [fresh, memoryPoint({ ...(existing.payload.properties as object), title: 'changed after cutover' })]);
    await store.upsert('relationships', [relationshipPoint('post-cutover-edge', 'SOLVES', 'post-cutover-memory', anyId, { strength: 0.9, created_at: '2026-01-01T00:00:00+00:00', valid_from: '2025-12-01T00:00:00+00:00' })]);
    await store.close();

    await handle.executeUpdate(rollbackUpdate, { args: [{ by: 'alice', reason: 'drill' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(JSON.parse(readFileSync(live, 'utf8')).workflowId).toBe('before');
    const after = await dumpWithMemorygraph({ kind: 'sqlite', path: source }, ['post-cutover-memory']);
    expect(after.memories['post-cutover-memory']?.title).toBe('written after cutover');
    expect(after.memories[anyId]?.title).toBe('changed after cutover');
    expect(after.relationships.find((r) => r.id === 'post-cutover-edge')).toMatchObject({ from: 'post-cutover-memory', to: anyId, type: 'SOLVES', valid_from: '2025-12-01T00:00:00+00:00' });
    expect(after.relationships).toHaveLength(before.relationships.length + 1);

    // The graph this run created keeps only what the service created in it after cutover, and the memory its new edge needs.
    expect(result.notes.join('\n')).toMatch(/the 1 memories and 1 relationships the service created in .* after cutover are kept there/);
    const left = await openFalkorStore({ url: falkor.url, graph: target.graph });
    const prints = await printsOf(left);
    await left.close();
    expect([[...prints.memories.keys()].sort(), [...prints.relationships.keys()]]).toEqual([[anyId, 'post-cutover-memory'].sort(), ['post-cutover-edge']]);
  });
});

describe('re-runs', () => {
  it("a second run into the same target (existingTarget: 'resume', merge's older name) writes no duplicate memory or edge", async () => {
    const target = falkorTarget();
    await approved(await start(plan({ target })));
    const second = await approved(await start(plan({ target, existingTarget: 'resume' })));
    expect(second.outcome).toBe('cut-over');
    // The target held data, so it was backed up (JSONL + manifest) before the second run wrote anything.
    expect(second.backup).toMatch(/target-backup\.jsonl$/);
    expect(JSON.parse(readFileSync(`${second.backup}.manifest.json`, 'utf8'))).toMatchObject({ memories: MEMORIES, relationships: RELATIONSHIPS });
    const counts = await falkorCounts(target.graph);
    expect([counts.memories, counts.relationships]).toEqual([MEMORIES, RELATIONSHIPS]);
  });

  it("refuses a non-empty target unless the plan says 'merge', writing nothing", async () => {
    const target = falkorTarget();
    await approved(await start(plan({ target })));
    const refused = await start(plan({ target }));
    expect(await failureType(refused)).toBe('TargetNotEmpty');
    expect(await failureMessage(refused)).toMatch(/unless the plan says existingTarget: 'merge'/);
    expect(await activityAttempts(refused, 'preflightMemoryGraph')).toBe(1);
  });
});

describe('dry run', () => {
  it('reads and counts everything, estimates, and writes nothing', async () => {
    const target = path.join(dir, `${unique('dry')}.db`);
    const result = await (await start(plan({ target: { kind: 'sqlite', path: target }, dryRun: true }))).result();
    expect(result.outcome).toBe('dry-run');
    expect(result.notes.join('\n')).toMatch(new RegExp(`read ${MEMORIES} memories and ${RELATIONSHIPS} relationships`));
    expect(existsSync(target)).toBe(false);
  });
});

describe('bad input fails fast, writing nothing', () => {
  it('a bad plan: no cutover file for a store target, a password in a URL', async () => {
    const handle = await start({ source: { kind: 'sqlite', path: sourcePath }, target: { kind: 'falkordb', url: 'redis://:hunter2@127.0.0.1:1' }, workDir: dir });
    const message = await failureMessage(handle);
    expect(message).toMatch(/Invalid plan/);
    expect(message).toMatch(/cutover/);
    expect(message).toMatch(/must not contain a password/);
    expect(message).not.toMatch(/hunter2/);
  });

  it('a SQLite file that is not a memorygraph store', async () => {
    const other = path.join(dir, 'other.db');
    new Database(other).exec('CREATE TABLE memories (id INTEGER PRIMARY KEY, content TEXT)').close();
    const target = path.join(dir, `${unique('never')}.db`);
    const handle = await start(plan({ source: { kind: 'sqlite', path: other }, target: { kind: 'sqlite', path: target } }));
    expect(await failureType(handle)).toBe('NotMemorygraphStore');
    expect(await failureMessage(handle)).toMatch(/not a memorygraph SQLite store: missing nodes\.id/);
    expect(existsSync(target)).toBe(false);
  });

  it('an unreachable FalkorDB', async () => {
    const handle = await start(plan({ target: { kind: 'falkordb', url: 'redis://127.0.0.1:1', graph: 'memorygraph' } }));
    expect(await failureType(handle)).toBe('FalkorDBUnreachable');
    expect(await activityAttempts(handle, 'preflightMemoryGraph')).toBe(1);
  });

  it("a FalkorDB that refuses the worker's password, which no message repeats", async () => {
    const guarded = await startTestFalkorDB({ password: 'right-secret' });
    const saved = process.env.FALKORDB_PASSWORD;
    process.env.FALKORDB_PASSWORD = 'wrong-secret';
    try {
      const handle = await start(plan({ target: { kind: 'falkordb', url: guarded.url, graph: 'memorygraph' } }));
      expect(await failureType(handle)).toBe('FalkorDBUnreachable');
      expect(await activityAttempts(handle, 'preflightMemoryGraph')).toBe(1);
      const history = JSON.stringify(await handle.fetchHistory());
      expect(history).not.toContain('wrong-secret');
      expect(await failureMessage(handle)).not.toContain('wrong-secret');
    } finally {
      if (saved === undefined) delete process.env.FALKORDB_PASSWORD;
      else process.env.FALKORDB_PASSWORD = saved;
      await guarded.stop();
    }
  });

  it('a malformed export file', async () => {
    const file = path.join(dir, 'malformed.json');
    writeFileSync(file, JSON.stringify({ format_version: '2.0', memories: [{ id: 'a' }], relationships: [] }));
    const target = falkorTarget();
    const handle = await start(plan({ source: { kind: 'export-file', path: file, format: 'memorygraph-2.0' }, target }));
    expect(await failureType(handle)).toBe('MalformedExportFile');
    expect(await failureMessage(handle)).toMatch(/memory #0 lacks type, title, content/);
    expect((await falkorCounts(target.graph)).memories).toBe(0);
  });

  it('a dangling relationship in the source', async () => {
    const source = path.join(dir, `${unique('dangling')}.db`);
    await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: 5, relationships: 5, seed: 'd' });
    const db = new Database(source);
    db.pragma('foreign_keys = OFF'); // as memorygraph's own connection has it
    db.prepare(`INSERT INTO relationships (id, from_id, to_id, rel_type, properties) VALUES ('dangling-edge', ?, 'no-such-memory', 'SOLVES', '{}')`).run(Object.keys((await dumpWithMemorygraph({ kind: 'sqlite', path: source })).memories)[0]);
    db.close();
    const target = falkorTarget();
    const handle = await start(plan({ source: { kind: 'sqlite', path: source }, target }));
    expect(await failureType(handle)).toBe('DanglingRelationships');
    expect(await failureMessage(handle)).toMatch(/dangling-edge/);
    expect((await falkorCounts(target.graph)).memories).toBe(0);
  });
});

describe('history', () => {
  it('holds no memory content, titles or tags', async () => {
    const handle = await start(plan({ target: falkorTarget() }));
    await approved(handle);
    const history = JSON.stringify(await handle.fetchHistory());
    for (const secret of ['Content 0', 'naïve', 'Mémoire', 'mémoire', 'why 0', '/srv/project']) expect(history).not.toContain(secret);
    // Payloads are base64 in history: decode every one and look there too.
    const decoded = [...history.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1], 'base64').toString('utf8')).join('\n');
    expect(decoded).toContain('"relationships"'); // the decoding sees the activities' arguments
    for (const secret of ['Content 0', 'naïve', 'Mémoire', 'why 0', '/srv/project']) expect(decoded).not.toContain(secret);
  });
});
