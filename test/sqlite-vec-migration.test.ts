/**
 * sqliteVecMigration end to end on a real Temporal server with a real worker,
 * a real SQLite-vec source, and both targets: pgvector (native PostgreSQL, PGlite or
 * DATABASE_URL) and Qdrant (the test double, or QDRANT_URL).
 */
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sameJson } from '../activities/compare';
import { sqliteVecActivities } from '../activities/sqlite-vec';
import type { MemoryPoint } from '../activities/stores/contract';
import { openReadOnly } from '../activities/stores/sqlite';
import { openTarget } from '../activities/targets';
import { generateMcpStore, insertMemories, openWritableStore } from '../scripts/generate-mcp-store';
import { approveSignal, approveUpdate, rejectSignal, rollbackSignal } from '../workflows/messages';
import type { TargetSpec } from '../workflows/plan-schemas';
import { SqliteVecPlan, sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { connectClient, failureMessage, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 1_200;
const DELETED_EVERY = 50; // 24 soft-deleted rows the default plan leaves behind
const LIVE = MEMORIES - MEMORIES / DELETED_EVERY;

let client: Client;
let worker: { stop(): Promise<void> };
let postgres: TestPostgres;
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('sqlite-vec');
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 384, deletedEvery: DELETED_EVERY });
  [client, postgres, qdrant] = await Promise.all([connectClient(), startTestPostgres(), startTestQdrant()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await postgres?.stop();
  await qdrant?.stop();
});

const backups = () => readdirSync(dir).filter((f) => f.endsWith('.bak'));
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function targets(): Record<string, () => TargetSpec> {
  return {
    pgvector: () => ({ kind: 'pgvector', url: postgres.url, schema: 'public', table: uniqueName('memories') }),
    qdrant: () => ({ kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') }),
  };
}

function planFor(target: TargetSpec, overrides: Partial<SqliteVecPlanInput> = {}): SqliteVecPlanInput & { target: TargetSpec } {
  return {
    source: { path: sourcePath },
    copy: { batchSize: 100, concurrency: 3 },
    approval: { approvers: ['alice', 'bob'] },
    cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
    ...overrides,
    target,
  };
}

async function start(plan: SqliteVecPlanInput) {
  return client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('wf'), args: [plan] });
}

async function targetPoints(spec: TargetSpec): Promise<Map<string, MemoryPoint>> {
  const target = openTarget(spec);
  try {
    const page = await target.readPage(null, 10_000);
    return new Map(page.points.map((p) => [p.id, p]));
  } finally {
    await target.close();
  }
}

async function targetState(spec: TargetSpec) {
  const target = openTarget(spec);
  try {
    return await target.describe();
  } finally {
    await target.close();
  }
}

describe.each(Object.entries(targets()))('to %s', (_name, makeTarget) => {
  it('copies, validates, waits for approval (update), cuts over and verifies', async () => {
    const sourceBefore = sha256(sourcePath);
    const plan = planFor(makeTarget());
    const handle = await start(plan);
    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report?.ok).toBe(true);
    expect(waiting.report?.sourceCount).toBe(LIVE);
    expect(waiting.report?.targetCount).toBe(LIVE);
    expect(waiting.report?.perUser.map((u) => u.user).sort()).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(waiting.report?.perUser.every((u) => u.source === u.target && u.source > 0)).toBe(true);
    expect(waiting.report?.minCosine).toBeGreaterThanOrEqual(0.99);
    expect(waiting.copy.copied).toBe(LIVE);

    // An approver not on the list is refused by the update's validator.
    const refused = await handle.executeUpdate(approveUpdate, { args: [{ by: 'mallory' }] }).catch((e: Error) => e);
    expect((refused as Error & { cause?: Error }).cause?.message).toMatch(/'mallory' is not on this plan's approver list \(alice, bob\)/);
    const approved = await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'report is clean' }] });
    expect(approved.approval.decision).toMatchObject({ by: 'alice', approved: true });

    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result.copied).toBe(LIVE);
    expect(await targetState(plan.target)).toMatchObject({ exists: true, points: LIVE });
    const live = JSON.parse(readFileSync(plan.cutover.file, 'utf8'));
    expect(live).toMatchObject({ kind: plan.target.kind, workflowId: handle.workflowId });
    expect(result.backupPath && existsSync(result.backupPath)).toBe(true);
    expect(sha256(sourcePath)).toBe(sourceBefore); // the source is read-only
  });

  it('approves through the signal; an update with nothing to approve is refused', async () => {
    const plan = planFor(makeTarget(), { source: { path: sourcePath, deleted: 'copy' } });
    const handle = await start(plan);
    await waitForPhase(handle, 'await-approval');
    await handle.signal(approveSignal, { by: 'mallory' }); // ignored: not an approver
    await handle.signal(approveSignal, { by: 'bob', reason: 'ok' });
    const result = await handle.result();
    expect(result.outcome).toBe('cut-over');
    expect(result.copied).toBe(MEMORIES); // soft-deleted rows copied as the plan says
    expect(result.notes.join('\n')).toMatch(/Ignored approval: 'mallory' is not on this plan's approver list/);
    await expect(handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] })).rejects.toThrow(); // nothing left to approve
  });

  it('reject: no cutover, target removed', async () => {
    const plan = planFor(makeTarget());
    const handle = await start(plan);
    await waitForPhase(handle, 'await-approval');
    await handle.signal(rejectSignal, { by: 'bob', reason: 'wrong window' });
    const result = await handle.result();
    expect(result.outcome).toBe('rejected');
    expect(existsSync(plan.cutover.file)).toBe(false);
    expect((await targetState(plan.target)).exists).toBe(false);
  });

  it('rollback after cutover: post-cutover writes carried into the source, live-backend file restored, target kept', async () => {
    const source = path.join(dir, `${uniqueName('rollback')}.db`);
    copyFileSync(sourcePath, source); // this test writes its source
    const plan = planFor(makeTarget(), { source: { path: source }, rollbackWindow: '5m' });
    writeFileSync(plan.cutover.file, '{"kind":"sqlite_vec"}\n');
    const handle = await start(plan);
    await waitForPhase(handle, 'await-approval');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    await waitForPhase(handle, 'rollback-window');
    expect(JSON.parse(readFileSync(plan.cutover.file, 'utf8')).workflowId).toBe(handle.workflowId);

    // The service, now on the target: edits one memory, adds one, deletes one.
    const target = openTarget(plan.target);
    const [edited, , removed] = (await target.readPage(null, 3)).points;
    edited.payload = { ...edited.payload, tags: ['edited-after-cutover'], updated_at: 1_800_000_000.125 };
    const added = { ...edited, id: '0b6f3c1e-5a2d-4e8f-9c7b-1d2e3f4a5b6c', payload: { ...edited.payload, content: 'added after cutover', content_hash: 'h-added', source_id: undefined } };
    await target.upsert([edited, added]);
    await target.deletePoints([removed.id]);
    await target.close();

    await handle.signal(rollbackSignal, { by: 'bob', reason: 'latency regression' });
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    expect(result.notes.join('\n')).toMatch(/2 post-cutover writes carried back into the source \(1 rows updated, 1 new\)/);
    expect(result.notes.join('\n')).toMatch(new RegExp(`1 memories deleted in the target after cutover are kept in the source \\(${removed.id}\\)`));
    expect(readFileSync(plan.cutover.file, 'utf8')).toBe('{"kind":"sqlite_vec"}\n');
    expect(await targetState(plan.target)).toMatchObject({ exists: true, points: LIVE });
    const db = openReadOnly(source);
    const rows = (hash: unknown) => db.prepare('SELECT content, tags, updated_at FROM memories WHERE content_hash = ?').all(hash);
    expect(rows(edited.payload.content_hash)).toEqual([{ content: edited.payload.content, tags: 'edited-after-cutover', updated_at: 1_800_000_000.125 }]);
    expect(rows('h-added')).toEqual([expect.objectContaining({ content: 'added after cutover' })]);
    expect(rows(removed.payload.content_hash)).toHaveLength(1); // a rollback deletes nothing from the source
    db.close();
  });
});

describe('pgvector-only behaviours', () => {
  const pgTarget = () => targets().pgvector();

  it('approval timeout ends without cutover and keeps the target when the plan says so', async () => {
    const plan = planFor(pgTarget(), { approval: { timeout: '2s' }, onReject: 'keep-target' });
    const result = await (await start(plan)).result();
    expect(result.outcome).toBe('approval-timed-out');
    expect(existsSync(plan.cutover.file)).toBe(false);
    expect(await targetState(plan.target)).toMatchObject({ exists: true, points: LIVE });
  });

  it('dry run reads, counts and estimates, and writes nothing', async () => {
    const backupsBefore = backups();
    const plan = planFor(pgTarget(), { dryRun: true });
    const handle = await start(plan);
    const result = await handle.result();
    expect(result.outcome).toBe('dry-run');
    expect(result.notes.join('\n')).toMatch(new RegExp(`Dry run: read ${LIVE} memories in 12 batches`));
    expect((await targetState(plan.target)).exists).toBe(false);
    expect(existsSync(plan.cutover.file)).toBe(false);
    expect(backups()).toEqual(backupsBefore);
  });

  it('a dry run heartbeats as it reads: a store slower to read than the heartbeat timeout is not retried forever', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (details) => beats.push(details));
    const plan = SqliteVecPlan.parse(planFor(pgTarget(), { dryRun: true }));
    const estimate = await env.run(sqliteVecActivities({ client }).dryRunSqliteVec, plan);
    expect(estimate).toMatchObject({ memories: LIVE, batches: 12 });
    expect(beats).toHaveLength(12);
    expect(beats.at(-1)).toEqual({ read: LIVE });
  });

  it('a target that already holds data is refused unless the plan says resume', async () => {
    const target = pgTarget();
    const first = await start(planFor(target, { approval: { timeout: '1s' }, onReject: 'keep-target' }));
    await first.result();
    const refused = await start(planFor(target));
    expect(await failureMessage(refused)).toMatch(/already holds 1176 points; nothing was written/);
    const resumed = await start(planFor(target, { existingTarget: 'resume', approval: { timeout: '1s' } }));
    expect((await resumed.result()).report?.ok).toBe(true);
  });

  it('a rejected resume removes only what it added: the points the target held before are kept', async () => {
    const target = pgTarget();
    await (await start(planFor(target, { approval: { timeout: '1s' }, onReject: 'keep-target' }))).result();
    const before = await targetPoints(target);
    const grown = path.join(dir, `${uniqueName('grown')}.db`);
    copyFileSync(sourcePath, grown);
    const db = openWritableStore(grown, 384);
    insertMemories(db, MEMORIES, { count: 50, dimensions: 384 });
    db.close();

    const handle = await start(planFor(target, { source: { path: grown }, existingTarget: 'resume' }));
    expect((await waitForPhase(handle, 'await-approval')).report).toMatchObject({ ok: true, targetCount: LIVE + 50 });
    await handle.signal(rejectSignal, { by: 'bob' });
    const result = await handle.result();
    expect(result.outcome).toBe('rejected');
    expect(result.notes.join('\n')).toMatch(/Removed the 50 points this run added .* its 1176 earlier points are kept/);
    const after = await targetPoints(target);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect([...after.values()].every((p) => sameJson(p.payload, before.get(p.id)!.payload))).toBe(true);
  });
});

/** An OpenAI-compatible embeddings endpoint: deterministic 64-dim vectors, and it checks the worker's key. */
async function startEmbeddingsServer() {
  const seen = { requests: 0, texts: 0, unauthorized: 0 };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.requests++;
      if (req.headers.authorization !== `Bearer ${EMBEDDINGS_KEY}`) {
        seen.unauthorized++;
        res.writeHead(401).end('{"error":"bad key"}');
        return;
      }
      const { input } = JSON.parse(body) as { input: string[] };
      seen.texts += input.length;
      const data = input.map((text, index) => ({
        index,
        embedding: Array.from({ length: 64 }, (_, d) => Math.sin(d + text.length) + (text.charCodeAt(d % text.length) % 7) / 10),
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data, model: 'tiny-64' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1`, seen, stop: () => new Promise((r) => server.close(r)) };
}

const EMBEDDINGS_KEY = 'sk-test-embeddings';

it('model change: re-embeds every memory through the embeddings endpoint; validation checks counts, tags and timestamps', async () => {
  process.env.MEMSHIFT_EMBEDDINGS_API_KEY = EMBEDDINGS_KEY; // the in-process worker's environment
  const embeddings = await startEmbeddingsServer();
  try {
    const plan = planFor(targets().pgvector(), { reembed: { url: embeddings.url, model: 'tiny-64', dimensions: 64 } });
    const handle = await start(plan);
    const waiting = await waitForPhase(handle, 'await-approval');
    expect(waiting.report).toMatchObject({ ok: true, sourceCount: LIVE, targetCount: LIVE, minCosine: null });
    expect(embeddings.seen).toMatchObject({ unauthorized: 0 });
    expect(embeddings.seen.texts).toBeGreaterThanOrEqual(LIVE);
    await handle.signal(rejectSignal, { by: 'alice', reason: 'only testing re-embedding' });
    await handle.result();
  } finally {
    await embeddings.stop();
  }
});

it('model change with a model whose vectors do not match reembed.dimensions fails with a clear error', async () => {
  process.env.MEMSHIFT_EMBEDDINGS_API_KEY = EMBEDDINGS_KEY;
  const embeddings = await startEmbeddingsServer();
  try {
    const plan = planFor(targets().pgvector(), { reembed: { url: embeddings.url, model: 'tiny-64', dimensions: 128 } });
    expect(await failureMessage(await start(plan))).toMatch(/Model 'tiny-64' returns 64-dim vectors but the plan says reembed\.dimensions=128/);
    expect((await targetState(plan.target)).exists).toBe(false); // refused in preflight, before anything was created
  } finally {
    await embeddings.stop();
  }
});
