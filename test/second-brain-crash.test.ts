/**
 * secondBrainV3Migration under stress: the worker process SIGKILLed mid-copy
 * and restarted (exact id set, exactly one event per memory), and Second
 * Brain v2.8 writing, reading and deleting all through copy and approval
 * (every write ends up in v3 at cutover).
 */
import type { Client } from '@temporalio/client';
import path from 'node:path';
import pg from 'pg';
import { v4 as uuidv4 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_BIN_DIR } from '../scripts/native-postgres';
import { approveUpdate } from '../workflows/messages';
import { secondBrainV3Migration, type SecondBrainPlanInput } from '../workflows/second-brain-v3-migration';
import { connectClient, spawnWorkerProcess, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { postgresIsPglite, queryPostgres, startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { createDatabase, createV2Store, randomVector } from './support/second-brain-fixtures';
import { seededRandom } from '../scripts/seeded-random';

process.env.MEMSHIFT_PG_BIN_DIR ??= POSTGRES_BIN_DIR;

let client: Client;
let postgres: TestPostgres;
const dir = tempDir();

// pg_dump needs a PostgreSQL server: under MEMSHIFT_PG=pglite these are skipped, not failed.
describe.skipIf(postgresIsPglite)('secondBrainV3Migration under stress', () => {
  beforeAll(async () => {
    [client, postgres] = await Promise.all([connectClient(), startTestPostgres()]);
  });

  afterAll(async () => {
    await postgres?.stop();
  });

  function planFor(sourceUrl: string, overrides: Partial<SecondBrainPlanInput> = {}): SecondBrainPlanInput {
    const target = new URL(postgres.url);
    target.pathname = `/${uniqueName('sb_v3')}`;
    return {
      source: { url: sourceUrl },
      target: { url: target.toString() },
      owner: { user: { email: 'ada@example.com', username: 'ada' } },
      backup: { dir },
      cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
      validation: { searchSample: 5 },
      ...overrides,
    };
  }

  it('worker SIGKILLed mid-copy and restarted: exactly the v2 ids, exactly one MemoryCreated event each', async () => {
    const sourceUrl = await createDatabase(postgres.url, uniqueName('sb_crash'));
    const fixture = await createV2Store(sourceUrl, { layout: 'v2.8', count: 3_000, withoutEmbeddingEvery: 97 });
    const taskQueue = uniqueQueue('sb-crash');
    const env = { MEMSHIFT_PG_BIN_DIR: process.env.MEMSHIFT_PG_BIN_DIR! };
    let worker = spawnWorkerProcess(taskQueue, env);
    const plan = planFor(sourceUrl, { copy: { batchSize: 50, concurrency: 2 } });
    const handle = await client.workflow.start(secondBrainV3Migration, { taskQueue, workflowId: uniqueName('sb-crash'), args: [plan] });
    try {
      await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= 400, 180_000);
      worker.kill('SIGKILL');
      await new Promise((resolve) => worker.once('exit', resolve));
      const copiedAtKill = (await queryPostgres<{ n: string }>(plan.target.url, 'SELECT count(*) AS n FROM memories'))[0].n;
      expect(Number(copiedAtKill)).toBeLessThan(3_000); // killed mid-copy, not after
      worker = spawnWorkerProcess(taskQueue, env);
      const waiting = await waitForPhase(handle, 'await-approval', 240_000);
      expect(waiting.report?.ok).toBe(true);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('cut-over');
      expect(result.notes.join('\n')).toMatch(/Copy resumed at \d+ memories \(attempt 2\)/);
    } finally {
      worker.kill('SIGTERM');
    }
    const ids = await queryPostgres<{ id: string }>(plan.target.url, 'SELECT id::text FROM memories ORDER BY id');
    expect(ids.map((r) => r.id)).toEqual(fixture.ids);
    const events = await queryPostgres<{ aggregate_id: string; n: string }>(plan.target.url, 'SELECT aggregate_id::text, count(*) AS n FROM events GROUP BY 1 ORDER BY 1');
    expect(events.map((e) => e.aggregate_id)).toEqual(fixture.ids);
    expect(events.every((e) => e.n === '1')).toBe(true);
  });

  it('v2 keeps being written, read and deleted through copy and approval: v3 holds every change at cutover', async () => {
    const sourceUrl = await createDatabase(postgres.url, uniqueName('sb_live'));
    const fixture = await createV2Store(sourceUrl, { layout: 'v2.8', count: 1_500 });
    const taskQueue = uniqueQueue('sb-live');
    const worker = await startWorker(taskQueue);
    const writer = startV2Writer(sourceUrl, fixture.ids);
    try {
      const plan = planFor(sourceUrl, { copy: { batchSize: 50, concurrency: 2 }, catchUp: { every: '2s', maxRoundsWhileWaiting: 20 } });
      const handle = await client.workflow.start(secondBrainV3Migration, { taskQueue, workflowId: uniqueName('sb-live'), args: [plan] });
      const waiting = await waitForPhase(handle, 'await-approval', 240_000);
      expect(waiting.report?.ok).toBe(true);
      await new Promise((r) => setTimeout(r, 5_000)); // writes keep landing while approval waits (and catch-ups run)
      const counts = await writer.stop();
      expect(counts.inserted).toBeGreaterThan(5);
      expect(counts.updated).toBeGreaterThan(5);
      expect(counts.deleted).toBeGreaterThan(2);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('cut-over');

      const v2 = await queryPostgres<{ id: string; content: string; access_count: number; updated: string }>(
        sourceUrl,
        `SELECT id::text, content, access_count, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS updated FROM memories ORDER BY id`,
      );
      const v3 = await queryPostgres<{ id: string; content: string; access_count: number; updated: string }>(
        plan.target.url,
        `SELECT id::text, content, retrieval_count AS access_count, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS updated FROM memories ORDER BY id`,
      );
      expect(v3).toEqual(v2);
      const events = await queryPostgres<{ n: string; content_matches: string }>(
        plan.target.url,
        `SELECT count(*) AS n, count(*) FILTER (WHERE e.event_data->>'content' = m.content) AS content_matches FROM events e JOIN memories m ON m.id = e.aggregate_id`,
      );
      expect(events).toEqual([{ n: String(v2.length), content_matches: String(v2.length) }]);
    } finally {
      await writer.stop();
      await worker.stop();
    }
  });

  /** Second Brain 2.8's own kinds of writes: new memories, edits (updated_at), reads (access_count, last_accessed only), deletes. */
  function startV2Writer(url: string, existing: string[]) {
    const random = seededRandom(99);
    const counts = { inserted: 0, updated: 0, read: 0, deleted: 0 };
    let running = true;
    const db = new pg.Client({ connectionString: url });
    const loop = (async () => {
      await db.connect();
      const ids = [...existing];
      for (let n = 0; running; n++) {
        const pick = () => ids[Math.floor(random() * ids.length)];
        if (n % 4 === 0) {
          const id = uuidv4();
          await db.query(`INSERT INTO memories (id, content, embedding, metadata) VALUES ($1, $2, $3, '{"tags":["live"]}')`, [id, `live ${n}`, `[${randomVector(random).join(',')}]`]);
          ids.push(id);
          counts.inserted++;
        } else if (n % 4 === 1) {
          await db.query(`UPDATE memories SET content = $2, updated_at = NOW() WHERE id = $1`, [pick(), `edited ${n}`]);
          counts.updated++;
        } else if (n % 4 === 2) {
          await db.query(`UPDATE memories SET access_count = access_count + 1, last_accessed = NOW() WHERE id = $1`, [pick()]);
          counts.read++;
        } else if (n % 12 === 3) {
          const [id] = ids.splice(Math.floor(random() * ids.length), 1);
          await db.query('DELETE FROM memories WHERE id = $1', [id]);
          counts.deleted++;
        }
        await new Promise((r) => setTimeout(r, 40));
      }
      await db.end();
    })();
    return {
      async stop() {
        running = false;
        await loop;
        return counts;
      },
    };
  }
});
