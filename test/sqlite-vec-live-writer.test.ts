/**
 * Nothing lost under live operation (issue #7): a separate process plays
 * mcp-memory-service and keeps inserting, updating and deleting memories in
 * the SQLite source from before the start, through copy, approval wait and
 * cutover; after cutover it writes to the target, as the service does once
 * switched; then a rollback. After the cutover every source write is in the
 * target; after the rollback every write is in the SQLite source.
 * Real Temporal, real SQLite, pgvector (native PostgreSQL by default) and the Qdrant double.
 */
import type { Client } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sameJson } from '../activities/compare';
import { cosine } from '../activities/copy-engine';
import type { MemoryPoint } from '../activities/stores/contract';
import { McpMemorySource, openReadOnly } from '../activities/stores/sqlite';
import { openTarget } from '../activities/targets';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { approveUpdate, rollbackSignal } from '../workflows/messages';
import type { TargetSpec } from '../workflows/plan-schemas';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import type { WriterConfig } from './support/mcp-writer';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 800;
const DIMENSIONS = 64;
let client: Client;
let worker: { stop(): Promise<void> };
let postgres: TestPostgres;
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('live-writer');
const dir = tempDir();

beforeAll(async () => {
  [client, postgres, qdrant] = await Promise.all([connectClient(), startTestPostgres(), startTestQdrant()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await postgres?.stop();
  await qdrant?.stop();
});

/** Every live memory in the source, keyed by point id. */
function sourceMemories(file: string): Map<string, MemoryPoint> {
  const db = openReadOnly(file);
  try {
    const source = new McpMemorySource(db, false);
    const ids = (db.prepare('SELECT id FROM memories WHERE deleted_at IS NULL').pluck().all() as number[]);
    return new Map(source.byIds(ids).map((p) => [p.id, p]));
  } finally {
    db.close();
  }
}

async function targetMemories(spec: TargetSpec): Promise<Map<string, MemoryPoint>> {
  const target = openTarget(spec);
  const points = new Map<string, MemoryPoint>();
  try {
    let cursor: string | null = null;
    do {
      const page = await target.readPage(cursor, 500);
      for (const p of page.points) points.set(p.id, p);
      cursor = page.next;
    } while (cursor !== null);
    return points;
  } finally {
    await target.close();
  }
}

/** The same memory: payload without memshift's source_id, vector by direction (Qdrant normalizes cosine vectors). */
function sameMemory(a: MemoryPoint, b: MemoryPoint | undefined): boolean {
  if (!b) return false;
  const { source_id: _a, ...pa } = a.payload;
  const { source_id: _b, ...pb } = b.payload;
  return sameJson(pa, pb) && a.vector.length === b.vector.length && cosine(a.vector, b.vector) > 1 - 1e-6;
}

function startWriter(config: WriterConfig): { process: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, 'support/mcp-writer.ts'), JSON.stringify(config)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { process: child, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

const logLines = (file: string, kind: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith(`target ${kind} `)).map((l) => l.split(' ')[2]) : [];

async function until(what: string, done: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const targets: Record<string, () => TargetSpec> = {
  pgvector: () => ({ kind: 'pgvector', url: postgres.url, schema: 'public', table: uniqueName('live') }),
  qdrant: () => ({ kind: 'qdrant', url: qdrant.url, collection: uniqueName('live') }),
};

describe.each(Object.entries(targets))('to %s', (name, makeTarget) => {
  it('keeps every write: source writes reach the target by cutover, target writes reach the source on rollback', async () => {
    const source = path.join(dir, `${name}.db`);
    generateMcpStore(source, { count: MEMORIES, dimensions: DIMENSIONS, deletedEvery: 40 });
    const liveFile = path.join(dir, `${name}-live.json`);
    writeFileSync(liveFile, '{"kind":"sqlite_vec"}\n');
    const target = makeTarget();
    const log = path.join(dir, `${name}-writer.log`);
    const writer = startWriter({
      source, liveFile, target, log, stopFile: path.join(dir, `${name}.stop`), dimensions: DIMENSIONS, firstNew: 1_000_000, pauseMs: 15,
    });
    await new Promise((r) => setTimeout(r, 500)); // writing before the start

    const handle = await client.workflow.start(sqliteVecMigration, {
      taskQueue,
      workflowId: uniqueName('live'),
      args: [{
        source: { path: source },
        target,
        copy: { batchSize: 100, concurrency: 2 },
        cutover: { file: liveFile },
        catchUp: { every: '1s' },
        rollbackWindow: '5m',
      }],
    });
    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report?.ok).toBe(true);
    expect(waiting.report?.checks.find((c) => c.name === 'live writes')?.detail).toMatch(/rows added or changed since/);
    await new Promise((r) => setTimeout(r, 3_000)); // catch-ups while the approver reads
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
    await waitForPhase(handle, 'rollback-window');

    // Cut over: the service now writes to the target, so the source stays as it was at the switch.
    await until('target writes', () => logLines(log, 'created').length >= 10 && logLines(log, 'deleted').length >= 2);
    const atCutover = sourceMemories(source);
    const inTarget = await targetMemories(target);
    const touched = new Set([...logLines(log, 'created'), ...logLines(log, 'updated'), ...logLines(log, 'deleted')]);
    const missing = [...atCutover.values()].filter((p) => !touched.has(p.id) && !sameMemory(p, inTarget.get(p.id)));
    expect(missing.map((p) => p.id)).toEqual([]);
    const strays = [...inTarget.keys()].filter((id) => !atCutover.has(id) && !touched.has(id));
    expect(strays).toEqual([]); // deleted (and soft-deleted) source rows were removed
    expect(atCutover.size).toBeGreaterThan(MEMORIES * 0.9);

    await handle.signal(rollbackSignal, { by: 'ops', reason: 'latency' });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(await writer.exited).toBe(0);
    expect(readFileSync(liveFile, 'utf8')).toBe('{"kind":"sqlite_vec"}\n');

    // Rolled back: the kept target's every memory is in the source, as the service last wrote it.
    const finalTarget = await targetMemories(target);
    const finalSource = sourceMemories(source);
    const byHash = new Map([...finalSource.values()].map((p) => [p.payload.content_hash, p]));
    const notCarried = [...finalTarget.values()].filter((p) => !sameMemory(p, byHash.get(p.payload.content_hash)));
    expect(notCarried.map((p) => p.id)).toEqual([]);
    const deletedInTarget = logLines(log, 'deleted');
    const created = logLines(log, 'created').filter((id) => !deletedInTarget.includes(id));
    expect(created.length).toBeGreaterThanOrEqual(5);
    expect(created.filter((id) => !finalSource.has(id))).toEqual([]);
    // Nothing is deleted from the source: memories deleted in the target after cutover are still there.
    const onlyInSource = new Set([...finalSource.keys()].filter((id) => !finalTarget.has(id)));
    expect([...onlyInSource].filter((id) => !deletedInTarget.includes(id))).toEqual([]);
    expect(deletedInTarget.filter((id) => atCutover.has(id) && !onlyInSource.has(id))).toEqual([]);
    expect(result.notes.join('\n')).toMatch(/post-cutover writes carried back into the source/);
  });
});
