/**
 * Failures after the switch never strand the service. A cutover that fails
 * after the switch rolls back instead of ending the run half-switched. The service writes to the source in the moment between the
 * last catch-up and the switch; the target then refuses the catch-up that
 * carries that write over (a trigger raising insufficient_privilege, as a
 * revoked grant would). Without the rollback the service would stay on a
 * target that lacks the write. And a rollback that fails keeps the way back
 * open: fixed, it is asked again and carries every write back.
 * Real Temporal, SQLite and PostgreSQL.
 */
import type { Client } from '@temporalio/client';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReadOnly } from '../activities/stores/sqlite';
import { openTarget } from '../activities/targets';
import { generateMcpStore, insertMemories, openWritableStore } from '../scripts/generate-mcp-store';
import { POSTGRES_BIN_DIR } from '../scripts/native-postgres';
import { approveUpdate, rollbackSignal } from '../workflows/messages';
import { secondBrainV3Migration } from '../workflows/second-brain-v3-migration';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { postgresIsPglite, queryPostgres, startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { createDatabase, createV2Store } from './support/second-brain-fixtures';

process.env.MEMSHIFT_PG_BIN_DIR ??= POSTGRES_BIN_DIR;

const MEMORIES = 120;
const DIMENSIONS = 16;
const BEFORE_SWITCH = '{"kind":"before-the-switch"}\n';
let client: Client;
let worker: { stop(): Promise<void> };
let postgres: TestPostgres;
const taskQueue = uniqueQueue('failed-cutover');
const dir = tempDir();

beforeAll(async () => {
  [client, postgres] = await Promise.all([connectClient(), startTestPostgres()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await postgres?.stop();
});

/** From now on every write to `table` fails as a revoked grant would (SQLSTATE 42501). */
async function refuseWrites(url: string, table: string): Promise<void> {
  await queryPostgres(url, `CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'write refused by the test' USING ERRCODE = 'insufficient_privilege'; END $$`);
  await queryPostgres(url, `CREATE TRIGGER refuse_writes BEFORE INSERT OR UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION refuse_writes()`);
}

/** Runs `write` the moment the live-backend file names this run: the service's last write to the old backend. */
async function writeInTheSwitch(liveFile: string, workflowId: string, write: () => Promise<void> | void): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (existsSync(liveFile) && readFileSync(liveFile, 'utf8').includes(workflowId)) return write();
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${liveFile} never named ${workflowId}`);
}

/** A sqlite-vec → pgvector run on a store of its own, with a 5-minute rollback window, waiting for approval. */
async function startSqliteVecRun() {
  const source = path.join(dir, `${uniqueName('sqlite_vec')}.db`);
  generateMcpStore(source, { count: MEMORIES, dimensions: DIMENSIONS, deletedEvery: 0 });
  const target = { kind: 'pgvector' as const, url: postgres.url, schema: 'public', table: uniqueName('memories') };
  const liveFile = path.join(dir, `${uniqueName('live')}.json`);
  writeFileSync(liveFile, BEFORE_SWITCH);
  const handle = await client.workflow.start(sqliteVecMigration, {
    taskQueue,
    workflowId: uniqueName('after-switch'),
    args: [{ source: { path: source }, target, cutover: { file: liveFile }, rollbackWindow: '5m' }],
  });
  await waitForPhase(handle, 'await-approval');
  return { handle, source, target, table: target.table, liveFile };
}

it('sqliteVecMigration: the catch-up after the switch fails, the run rolls back, the write stays in the source and the service on it', async () => {
  const { handle, source, table, liveFile } = await startSqliteVecRun();
  await refuseWrites(postgres.url, `public.${table}`);
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  await writeInTheSwitch(liveFile, handle.workflowId, () => {
    const db = openWritableStore(source, DIMENSIONS);
    insertMemories(db, MEMORIES + 1, { count: 1, dimensions: DIMENSIONS, seed: 5 });
    db.close();
  });

  const result = await handle.result();
  expect(result.outcome).toBe('rolled-back');
  expect(result.notes.join('\n')).toMatch(/Rolled back \(cutover failed: PostgreSQL at .* refused: write refused by the test \(SQLSTATE 42501\)\)/);
  expect(readFileSync(liveFile, 'utf8')).toBe(BEFORE_SWITCH); // the service is back on the source
  const db = openReadOnly(source);
  expect(db.prepare('SELECT count(*) FROM memories').pluck().get()).toBe(MEMORIES + 1); // the write made in the switch is kept
  db.close();
});

it('sqliteVecMigration: a rollback that fails keeps the window open; fixed and asked again, it carries the post-cutover write back', async () => {
  const { handle, source, target, table, liveFile } = await startSqliteVecRun();
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  await waitForPhase(handle, 'rollback-window');
  // The service, now on the target, edits a memory.
  const live = openTarget(target);
  const [edited] = (await live.readPage(null, 1)).points;
  edited.payload = { ...edited.payload, tags: ['edited-after-cutover'], updated_at: 1_800_000_000.5 };
  await live.upsert([edited]);
  await live.close();

  // Someone moved the target table away: the rollback cannot read it, and says so.
  await queryPostgres(postgres.url, `ALTER TABLE public.${table} RENAME TO ${table}_moved`);
  await handle.signal(rollbackSignal, { by: 'bob', reason: 'latency' });
  const refused = await waitForStatus(handle, (s) => s.notes.some((n) => n.startsWith('Rollback requested by bob failed')));
  expect(refused.notes.join('\n')).toMatch(/Rollback requested by bob failed: .*SQLSTATE 42P01.*The way back stays open/);
  expect(refused.outcome).toBeNull();
  expect(JSON.parse(readFileSync(liveFile, 'utf8')).workflowId).toBe(handle.workflowId); // still on the target

  await queryPostgres(postgres.url, `ALTER TABLE public.${table}_moved RENAME TO ${table}`);
  await handle.signal(rollbackSignal, { by: 'bob', reason: 'table is back' });
  const result = await handle.result();
  expect(result.outcome).toBe('rolled-back');
  expect(result.notes.join('\n')).toMatch(/1 post-cutover writes carried back into the source \(1 rows updated, 0 new\)/);
  expect(readFileSync(liveFile, 'utf8')).toBe(BEFORE_SWITCH);
  const db = openReadOnly(source);
  expect(db.prepare('SELECT tags FROM memories WHERE content_hash = ?').pluck().get(edited.payload.content_hash)).toBe('edited-after-cutover');
  db.close();
});

it("sqliteVecMigration: a rollback keeps what the service rewrote after the switch back, even with its clock 30 s behind the worker's", async () => {
  const { handle, source, target, liveFile } = await startSqliteVecRun();
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
  await waitForPhase(handle, 'rollback-window');
  const live = openTarget(target);
  const [memory] = (await live.readPage(null, 1)).points;
  // Both stores open before the switch back: the writes below must land within the rollback's
  // first settle second, and a loaded machine takes long enough over a connection or a file.
  const db = openWritableStore(source, DIMENSIONS);
  const rewrite = db.prepare('UPDATE memories SET tags = ?, updated_at = ? WHERE content_hash = ?');
  await handle.signal(rollbackSignal, { by: 'bob' });
  await until(() => readFileSync(liveFile, 'utf8') === BEFORE_SWITCH);
  // Right after the switch back: a write still in flight lands in the target, and the service,
  // its clock 30 s behind the worker's, rewrites the same memory in SQLite.
  const lagging = Date.now() / 1000 - 30;
  await live.upsert([{ ...memory, payload: { ...memory.payload, tags: ['in-flight'], updated_at: lagging } }]);
  rewrite.run('rewritten-after-switch-back', lagging, memory.payload.content_hash);
  db.close();
  await live.close();

  const result = await handle.result();
  expect(result.outcome).toBe('rolled-back');
  expect(result.notes.join('\n')).toMatch(new RegExp(`1 rows the service rewrote after switching back kept as it wrote them \\(${memory.id}\\)`));
  const kept = openReadOnly(source);
  expect(kept.prepare('SELECT tags FROM memories WHERE content_hash = ?').pluck().get(memory.payload.content_hash)).toBe('rewritten-after-switch-back');
  kept.close();
});

async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.skipIf(postgresIsPglite)('secondBrainV3Migration', () => {
  it('the catch-up after the switch fails, the run rolls back, the v2 write stays and the service is back on v2', async () => {
    const sourceUrl = await createDatabase(postgres.url, uniqueName('sb_v28'));
    await createV2Store(sourceUrl, { layout: 'v2.8', count: MEMORIES });
    const targetUrl = new URL(postgres.url);
    targetUrl.pathname = `/${uniqueName('sb_v3')}`;
    const liveFile = path.join(dir, 'live-second-brain.json');
    writeFileSync(liveFile, BEFORE_SWITCH);
    const handle = await client.workflow.start(secondBrainV3Migration, {
      taskQueue,
      workflowId: uniqueName('failed-cutover-sb'),
      args: [
        {
          source: { url: sourceUrl },
          target: { url: targetUrl.toString() },
          owner: { user: { email: 'ada@example.com', username: 'ada', fullName: 'Ada' } },
          backup: { dir },
          cutover: { file: liveFile },
          rollbackWindow: '5m',
        },
      ],
    });
    await waitForPhase(handle, 'await-approval');
    await refuseWrites(targetUrl.toString(), 'memories');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const v2 = new pg.Client({ connectionString: sourceUrl });
    await v2.connect();
    try {
      await writeInTheSwitch(liveFile, handle.workflowId, async () => {
        await v2.query(`INSERT INTO memories (id, content, metadata, embedding, memory_type)
          VALUES ('6f1c2b3a-0000-4000-8000-00000000beef', 'written in the switch', '{}', array_fill(0.5::real, ARRAY[1536])::vector, 'semantic')`);
      });
      const result = await handle.result();
      expect(result.outcome).toBe('rolled-back');
      expect(result.notes.join('\n')).toMatch(/Rolled back \(cutover failed: .*SQLSTATE 42501/);
      expect(readFileSync(liveFile, 'utf8')).toBe(BEFORE_SWITCH);
      const kept = await v2.query(`SELECT content FROM memories WHERE id = '6f1c2b3a-0000-4000-8000-00000000beef'`);
      expect(kept.rows).toEqual([{ content: 'written in the switch' }]);
      expect((await v2.query('SELECT count(*)::int AS n FROM memories')).rows[0].n).toBe(MEMORIES + 1);
    } finally {
      await v2.end();
    }
  });
});
