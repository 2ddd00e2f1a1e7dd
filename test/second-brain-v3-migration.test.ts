/**
 * secondBrainV3Migration end to end on a real Temporal server with a real
 * worker, native PostgreSQL 18 + pgvector (v2 source and v3 target are two
 * databases of one server) and the Qdrant double as the v1 collection.
 */
import type { Client } from '@temporalio/client';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { v4 as uuidv4 } from 'uuid';
import { eventIdFor, userIdFor } from '../activities/second-brain/v3-memory';
import { v3SchemaDdl } from '../activities/second-brain/v3-schema';
import { POSTGRES_BIN_DIR } from '../scripts/native-postgres';
import { approveUpdate, pauseSignal, rejectSignal, resumeSignal, rollbackSignal } from '../workflows/messages';
import { secondBrainV3Migration, type SecondBrainPlanInput } from '../workflows/second-brain-v3-migration';
import { activityAttempts, connectClient, failureMessage, failureType, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { postgresIsPglite, queryPostgres, startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';
import { DIMENSIONS, createDatabase, createV1Collection, createV2Store, type Fixture } from './support/second-brain-fixtures';

process.env.MEMSHIFT_PG_BIN_DIR ??= POSTGRES_BIN_DIR;

const MEMORIES = 420;
const WITHOUT_EMBEDDING_EVERY = 20; // 21 memories without an embedding in v2
let client: Client;
let worker: { stop(): Promise<void> };
let postgres: TestPostgres;
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('second-brain');
const dir = tempDir();
let v28: { url: string; fixture: Fixture; collection: string };
let v20: { url: string; fixture: Fixture; collection: string };

// pg_dump needs a PostgreSQL server: under MEMSHIFT_PG=pglite these are skipped, not failed.
describe.skipIf(postgresIsPglite)('secondBrainV3Migration', () => {
  beforeAll(async () => {
    [client, postgres, qdrant] = await Promise.all([connectClient(), startTestPostgres(), startTestQdrant()]);
    const v28Url = await createDatabase(postgres.url, uniqueName('sb_v28'));
    const v28Fixture = await createV2Store(v28Url, { layout: 'v2.8', count: MEMORIES, withoutEmbeddingEvery: WITHOUT_EMBEDDING_EVERY });
    // The v1 collection knows the vectors of the first 15 of the 21 memories v2 lacks.
    const collection = uniqueName('second_brain');
    await createV1Collection(qdrant.url, collection, new Map(v28Fixture.withoutEmbedding.slice(0, 15).map((id) => [id, v28Fixture.vectors.get(id)!])));
    v28 = { url: v28Url, fixture: v28Fixture, collection };
    const v20Url = await createDatabase(postgres.url, uniqueName('sb_v20'));
    const v20Fixture = await createV2Store(v20Url, { layout: 'v2.0', count: MEMORIES, withoutEmbeddingEvery: WITHOUT_EMBEDDING_EVERY, ownerField: true });
    // A v1 collection beside v2.0 that knows the vectors of 10 of its 21 memories without one.
    const v20Collection = uniqueName('second_brain');
    await createV1Collection(qdrant.url, v20Collection, new Map(v20Fixture.withoutEmbedding.slice(0, 10).map((id) => [id, v20Fixture.vectors.get(id)!])));
    v20 = { url: v20Url, fixture: v20Fixture, collection: v20Collection };
    worker = await startWorker(taskQueue);
  });

  afterAll(async () => {
    await worker?.stop();
    await postgres?.stop();
    await qdrant?.stop();
  });

  const targetUrl = () => {
    const url = new URL(postgres.url);
    url.pathname = `/${uniqueName('sb_v3')}`;
    return url.toString();
  };

  function planFor(sourceUrl: string, overrides: Partial<SecondBrainPlanInput> = {}): SecondBrainPlanInput {
    return {
      source: { url: sourceUrl },
      target: { url: targetUrl() },
      owner: { user: { email: 'ada@example.com', username: 'ada', fullName: 'Ada' } },
      backup: { dir },
      copy: { batchSize: 50, concurrency: 2 },
      approval: { approvers: ['alice', 'bob'] },
      cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
      ...overrides,
    };
  }

  const start = (plan: SecondBrainPlanInput) => client.workflow.start(secondBrainV3Migration, { taskQueue, workflowId: uniqueName('sb'), args: [plan] });

  const databaseExists = async (url: string) =>
    (await queryPostgres(postgres.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [new URL(url).pathname.slice(1)])).length === 1;

  /** The whole v2 table as text: equal before and after means the run never wrote it. */
  const v2Checksum = async (url: string) => (await queryPostgres<{ sum: string }>(url, `SELECT md5(string_agg(m::text, '|' ORDER BY id)) AS sum FROM memories m`))[0].sum;

  describe('v2.8 with the v1 Qdrant collection', () => {
    it('copies, validates every memory, waits for approval, cuts over; one event per memory; history holds no content', async () => {
      const before = await v2Checksum(v28.url);
      const plan = planFor(v28.url, { source: { url: v28.url, qdrant: { url: qdrant.url, collection: v28.collection } }, validation: { searchSample: 10 } });
      const handle = await start(plan);
      const waiting = await waitForPhase(handle, 'await-approval');
      expect(waiting.report?.ok).toBe(true);
      expect(waiting.report?.sourceCount).toBe(MEMORIES);
      expect(waiting.report?.targetCount).toBe(MEMORIES);
      expect(waiting.report?.perUser).toEqual([{ user: 'ada', source: MEMORIES, target: MEMORIES }]);
      expect(waiting.notes.join('\n')).toMatch(/Second Brain v2\.8 with 420 memories \(1536-dim\); 21 without an embedding, 15 of them filled from the v1 collection/);
      expect(waiting.notes.join('\n')).toMatch(/6 memories will have no embedding in v3/);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'report is clean' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('cut-over');
      expect(result.copied).toBe(MEMORIES);
      expect(existsSync(result.backupPath!)).toBe(true);
      expect(await v2Checksum(v28.url)).toBe(before);

      const target = plan.target.url;
      const memories = await queryPostgres<{ id: string; title: string; content: string; user_id: string; created_at: string; memory_type: string; has_vector: boolean; embedding_model: string | null; retrieval_count: number; metadata: Record<string, unknown> }>(
        target,
        `SELECT id::text, title, content, user_id::text, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS created_at, memory_type,
          embedding_vector IS NOT NULL AS has_vector, embedding_model, retrieval_count, metadata FROM memories ORDER BY id`,
      );
      expect(memories.map((m) => m.id)).toEqual(v28.fixture.ids);
      expect(memories.every((m) => m.title.length > 0 && Array.from(m.title).length <= 500 && m.title === m.title.trim())).toBe(true);
      expect(memories.filter((m) => m.title === 'Untitled memory').length).toBe(60); // content of blanks only: every 7th
      expect(memories.some((m) => m.title.startsWith('Grocery list'))).toBe(true);
      expect(new Set(memories.map((m) => m.user_id))).toEqual(new Set([userIdFor('ada@example.com')]));
      expect(new Set(memories.map((m) => m.memory_type))).toEqual(new Set(['semantic', 'episodic', 'procedural']));
      expect(memories.filter((m) => !m.has_vector).length).toBe(6);
      expect(memories.filter((m) => m.embedding_model === 'text-embedding-3-small').length).toBe(15); // named by the v1 points
      // Microseconds kept; v2.8 extras kept in metadata.
      const v2Rows = await queryPostgres<{ id: string; created_at: string }>(v28.url, `SELECT id::text, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS created_at FROM memories ORDER BY id`);
      expect(memories.map((m) => m.created_at)).toEqual(v2Rows.map((r) => r.created_at));
      expect(memories[0].metadata).toHaveProperty('second_brain_v2.semantic_metadata');

      const events = await queryPostgres<{ id: string; aggregate_id: string; event_type: string; stream_version: number; occurred: string; created: string }>(
        target,
        `SELECT e.id::text, e.aggregate_id::text, e.event_type, e.stream_version, e.event_data->>'occurred_at' AS occurred,
          to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created FROM events e ORDER BY aggregate_id`,
      );
      expect(events.map((e) => e.aggregate_id)).toEqual(v28.fixture.ids);
      expect(events.every((e) => e.event_type === 'MemoryCreated' && e.stream_version === 1 && e.id === eventIdFor(e.aggregate_id) && e.occurred === e.created)).toBe(true);
      const tags = await queryPostgres<{ name: string; usage_count: number }>(target, 'SELECT name, usage_count FROM tags ORDER BY name');
      expect(tags.map((t) => t.name)).toEqual(['personal', 'topic-0', 'topic-1', 'topic-2', 'topic-3', 'topic-4', 'work']);
      expect(tags.find((t) => t.name === 'work')?.usage_count).toBe(140);
      expect(await queryPostgres(target, 'SELECT version_num FROM alembic_version')).toEqual([{ version_num: '002' }]);
      expect(JSON.parse(readFileSync(plan.cutover.file, 'utf8'))).toMatchObject({ kind: 'postgres', url: target, workflowId: handle.workflowId });

      // Nothing of any memory's content reaches history (inputs, results, heartbeats, notes).
      const history = JSON.stringify(await handle.fetchHistory());
      for (const fragment of ['Grocery list', 'A very long first line', 'Überlegung', 'With details', 'v1 note']) expect(history).not.toContain(fragment);
    });

    it('reject: no cutover, the database this run created is dropped, v2 untouched', async () => {
      const before = await v2Checksum(v28.url);
      const plan = planFor(v28.url);
      const handle = await start(plan);
      const waiting = await waitForPhase(handle, 'await-approval');
      // Without the v1 collection: every memory validated, the 21 lacking an embedding copied without one.
      expect(waiting.report?.ok).toBe(true);
      expect([waiting.report?.sourceCount, waiting.report?.targetCount]).toEqual([MEMORIES, MEMORIES]);
      expect(waiting.notes.join('\n')).toMatch(/Second Brain v2\.8 with 420 memories \(1536-dim\); 21 without an embedding, 0 of them filled from the v1 collection/);
      expect((await queryPostgres<{ n: string }>(plan.target.url, 'SELECT count(*) AS n FROM memories WHERE embedding_vector IS NULL'))[0].n).toBe('21');
      expect((await queryPostgres<{ n: string }>(plan.target.url, 'SELECT count(*) AS n FROM events'))[0].n).toBe(String(MEMORIES));
      await handle.signal(rejectSignal, { by: 'bob', reason: 'not tonight' });
      const result = await handle.result();
      expect(result.outcome).toBe('rejected');
      expect(result.notes.join('\n')).toMatch(/Dropped the database .* which this run created/);
      expect(await databaseExists(plan.target.url)).toBe(false);
      expect(existsSync(plan.cutover.file)).toBe(false);
      expect(await v2Checksum(v28.url)).toBe(before);
    });
  });

  describe('runs that stop before cutover', () => {
    it('dry run: reads, counts and estimates; writes nothing, not even a backup', async () => {
      const plan = planFor(v28.url, { dryRun: true });
      const handle = await start(plan);
      const result = await handle.result();
      expect(result.outcome).toBe('dry-run');
      expect(result.notes.join('\n')).toMatch(/Dry run: read 420 memories in 9 batches in [\d.]+s; estimated copy time \d+s\. Nothing was written\./);
      expect(await databaseExists(plan.target.url)).toBe(false);
      expect(existsSync(path.join(dir, handle.workflowId))).toBe(false);
    });

    it('a rejected run into an empty database someone else created drops only the tables it created; a resume continues a kept one', async () => {
      const target = await createDatabase(postgres.url, uniqueName('sb_given'));
      const plan = { ...planFor(v28.url), target: { url: target } };
      const first = await start({ ...plan, onReject: 'keep-target' as const });
      await waitForPhase(first, 'await-approval');
      await first.signal(rejectSignal, { by: 'bob' });
      expect((await first.result()).outcome).toBe('rejected');
      expect((await queryPostgres<{ n: string }>(target, 'SELECT count(*) AS n FROM memories'))[0].n).toBe(String(MEMORIES)); // kept, as the plan says

      const refused = await start(plan);
      expect(await failureType(refused)).toBe('TargetNotEmpty');

      const resumed = await start({ ...plan, existingTarget: 'resume' });
      const waiting = await waitForPhase(resumed, 'await-approval');
      expect(waiting.report?.ok).toBe(true);
      expect(waiting.notes.join('\n')).toMatch(/The target already held 420 memories; they are kept whatever happens/);
      await resumed.signal(rejectSignal, { by: 'bob' });
      const result = await resumed.result();
      expect(result.notes.join('\n')).toMatch(/Removed the 0 memories this run added .*; its 420 earlier memories are kept/);
      expect((await queryPostgres<{ n: string }>(target, 'SELECT count(*) AS n FROM events'))[0].n).toBe(String(MEMORIES));

      const third = await createDatabase(postgres.url, uniqueName('sb_given'));
      const dropped = await start({ ...planFor(v28.url), target: { url: third } });
      await waitForPhase(dropped, 'await-approval');
      await dropped.signal(rejectSignal, { by: 'bob' });
      expect((await dropped.result()).notes.join('\n')).toMatch(/Dropped the v3 tables this run created/);
      expect(await databaseExists(third)).toBe(true);
      expect(await queryPostgres(third, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).toEqual([]);
      expect(await queryPostgres(third, `SELECT extname FROM pg_extension WHERE extname = 'vector'`)).toEqual([]); // this run created it
    });
  });

  describe('validation', () => {
    it('a rejected resume into a v3 schema with no memories (alembic upgrade head on an empty database) removes the user it created, not only its memories', async () => {
      const target = await createDatabase(postgres.url, uniqueName('sb_alembic'));
      await queryPostgres(target, v3SchemaDdl(DIMENSIONS));
      const run = await start({ ...planFor(v28.url), target: { url: target }, existingTarget: 'resume' });
      expect((await waitForPhase(run, 'await-approval')).report?.ok).toBe(true);
      expect((await queryPostgres<{ n: string }>(target, 'SELECT count(*) AS n FROM users'))[0].n).toBe('1');
      await run.signal(rejectSignal, { by: 'bob' });
      expect((await run.result()).notes.join('\n')).toMatch(/Removed the 420 memories this run added .* and the 1 user\(s\) it created; its 0 earlier memories are kept/);
      for (const table of ['users', 'memories', 'events', 'tags', 'memory_tags']) {
        expect((await queryPostgres<{ n: string }>(target, `SELECT count(*) AS n FROM ${table}`))[0].n, table).toBe('0');
      }
      expect((await queryPostgres<{ v: string }>(target, 'SELECT version_num AS v FROM alembic_version'))[0].v).toBe('002'); // the schema it found stays
    });

    it('a v3 row that differs from its v2 memory blocks cutover, named by id only', async () => {
      const plan = planFor(v28.url, { copy: { batchSize: 2, concurrency: 1 } }); // a copy slow enough to pause in
      const handle = await start(plan);
      await waitForPhase(handle, 'copy');
      const first = v28.fixture.ids[0]; // in the first batch: the copy never writes it again
      for (let written = false; !written; await new Promise((r) => setTimeout(r, 50))) {
        written = (await queryPostgres(plan.target.url, 'SELECT 1 FROM memories WHERE id = $1', [first]).catch(() => [])).length === 1;
      }
      await handle.signal(pauseSignal, { by: 'alice' }); // validation does not start while paused
      // Paused for real once the count stands still: no batch in flight re-checks (and rewrites) the first one.
      const count = async () => (await queryPostgres<{ n: string }>(plan.target.url, 'SELECT count(*) AS n FROM memories'))[0].n;
      for (let before = '', now = await count(); before !== now; before = now, await new Promise((r) => setTimeout(r, 2_500)), now = await count());
      await queryPostgres(plan.target.url, `UPDATE memories SET title = 'tampered', retrieval_count = retrieval_count + 1 WHERE id = $1`, [first]);
      await handle.signal(resumeSignal, { by: 'alice' });
      expect(await failureType(handle)).toBe('ValidationFailed');
      expect(await failureMessage(handle)).toMatch(/420 compared field by field \(vector to float32, event data\), 1 differ/);
      const status = await handle.query('status');
      expect((status as { report: { errors: string[] } }).report.errors).toEqual([`${first}: payload title, retrieval_count, event differ (event: event data differs)`]);
      expect(existsSync(plan.cutover.file)).toBe(false);
    });
  });

  describe('v2.0, and rollback into either layout', () => {
    it('owners mapped by a metadata field; memories without embeddings copied without; the v3 schema is alembic 001 + 002', async () => {
      const plan = planFor(v20.url, {
        owner: { metadataField: 'owner', users: { alice: { email: 'alice@example.com', username: 'alice' }, bob: { email: 'bob@example.com', username: 'bob' } } },
        memories: { linksField: 'related' },
        approval: { timeout: '1s' },
        onReject: 'keep-target',
      });
      const result = await (await start(plan)).result();
      expect(result.outcome).toBe('approval-timed-out');
      expect(result.report?.ok).toBe(true);
      expect(result.report?.perUser).toEqual([
        { user: 'alice', source: MEMORIES / 2, target: MEMORIES / 2 },
        { user: 'bob', source: MEMORIES / 2, target: MEMORIES / 2 },
      ]);
      const target = plan.target.url;
      expect((await queryPostgres<{ n: string }>(target, 'SELECT count(*) AS n FROM memories WHERE embedding_vector IS NULL AND embedding IS NULL AND embedding_model IS NULL'))[0].n).toBe('21');
      // Naive v2.0 timestamps read as UTC (the plan's default zone).
      const [first] = await queryPostgres<{ created: string }>(target, `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS created FROM memories WHERE (metadata->>'n')::int = 0`);
      expect(first.created).toBe('2024-01-01 00:00:00.000000');

      // The schema as alembic 001 + 002 create it.
      const columns = await queryPostgres<{ table_name: string; column_name: string; is_nullable: string; udt_name: string }>(
        target,
        `SELECT table_name, column_name, is_nullable, udt_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
      );
      const of = (table: string) => columns.filter((c) => c.table_name === table);
      expect(of('memories').map((c) => c.column_name)).toEqual([
        'id', 'user_id', 'title', 'content', 'memory_type', 'status', 'importance_score', 'confidence_score', 'source_url', 'embedding',
        'embedding_model', 'metadata', 'created_at', 'updated_at', 'accessed_at', 'retention_strength', 'retrieval_count', 'embedding_vector', 'attachments',
      ]);
      const nullable = of('memories').filter((c) => c.is_nullable === 'YES').map((c) => c.column_name);
      expect(nullable).toEqual(['source_url', 'embedding', 'embedding_model', 'embedding_vector']);
      expect(of('memories').find((c) => c.column_name === 'embedding_vector')?.udt_name).toBe('vector');
      expect(of('events').map((c) => `${c.column_name}:${c.is_nullable}`)).toEqual([
        'id:NO', 'aggregate_id:NO', 'event_type:NO', 'event_version:NO', 'event_data:NO', 'user_id:YES', 'correlation_id:YES', 'causation_id:YES', 'created_at:NO', 'stream_version:NO',
      ]);
      const tables = [...new Set(columns.map((c) => c.table_name))].sort();
      expect(tables).toEqual(['alembic_version', 'events', 'memories', 'memory_links', 'memory_tags', 'session_memories', 'sessions', 'snapshots', 'tags', 'users']);
      const constraints = await queryPostgres<{ conname: string; def: string }>(target, `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE contype = 'u' ORDER BY conname`);
      expect(constraints).toEqual(expect.arrayContaining([{ conname: 'uq_aggregate_version', def: 'UNIQUE (aggregate_id, stream_version)' }, { conname: 'uq_memory_tags', def: 'UNIQUE (memory_id, tag_id)' }]));
      const [index] = await queryPostgres<{ def: string }>(target, `SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'idx_memories_embedding_vector'`);
      expect(index.def).toMatch(/USING ivfflat \(embedding_vector vector_cosine_ops\) WITH \(lists='1'\)/);
      expect(await queryPostgres(target, 'SELECT version_num FROM alembic_version')).toEqual([{ version_num: '002' }]);
      expect((await queryPostgres<{ n: string }>(target, 'SELECT count(*) AS n FROM memory_links'))[0].n).toBe('104');
      const fk = await queryPostgres<{ def: string }>(target, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'memories'::regclass AND contype = 'f'`);
      expect(fk).toEqual([{ def: 'FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE' }]);
    });

    it('with the v1 Qdrant collection: its vectors fill memories v2.0 lacks, validated, cut over; v2 untouched', async () => {
      const before = await v2Checksum(v20.url);
      const plan = planFor(v20.url, { source: { url: v20.url, qdrant: { url: qdrant.url, collection: v20.collection } }, validation: { searchSample: 10 } });
      const handle = await start(plan);
      const waiting = await waitForPhase(handle, 'await-approval');
      expect(waiting.report?.ok).toBe(true);
      expect([waiting.report?.sourceCount, waiting.report?.targetCount]).toEqual([MEMORIES, MEMORIES]);
      expect(waiting.notes.join('\n')).toMatch(/Second Brain v2\.0 with 420 memories \(1536-dim\); 21 without an embedding, 10 of them filled from the v1 collection/);
      expect(waiting.notes.join('\n')).toMatch(/11 memories will have no embedding in v3/);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('cut-over');
      expect(result.copied).toBe(MEMORIES);
      expect(await v2Checksum(v20.url)).toBe(before);

      const target = plan.target.url;
      const filled = v20.fixture.withoutEmbedding.slice(0, 10);
      const rows = await queryPostgres<{ id: string; vector: string; embedding_model: string }>(
        target,
        'SELECT id::text, embedding_vector::text AS vector, embedding_model FROM memories WHERE id = ANY($1::uuid[]) ORDER BY id',
        [filled],
      );
      expect(rows.map((r) => r.id)).toEqual([...filled].sort());
      for (const row of rows) {
        expect(row.embedding_model).toBe('text-embedding-3-small'); // named by the v1 point
        // The v1 point's vector, which Qdrant stored normalized (cosine collection).
        const [stored, written] = [JSON.parse(row.vector) as number[], v20.fixture.vectors.get(row.id)!];
        const norm = Math.hypot(...written);
        expect(stored.length).toBe(DIMENSIONS);
        expect(Math.max(...stored.map((x, i) => Math.abs(x - written[i] / norm)))).toBeLessThan(1e-6);
      }
      expect((await queryPostgres<{ n: string }>(target, 'SELECT count(*) AS n FROM memories WHERE embedding_vector IS NULL'))[0].n).toBe('11');
      expect((await queryPostgres<{ n: string }>(target, `SELECT count(DISTINCT aggregate_id) AS n FROM events WHERE event_type = 'MemoryCreated' AND stream_version = 1`))[0].n).toBe(String(MEMORIES));
    });

    it.each(['v2.0', 'v2.8'] as const)('rollback after cutover into %s: memories written in v3 afterwards are carried back as v2 rows', async (layout) => {
      const sourceUrl = await createDatabase(postgres.url, uniqueName('sb_rb'));
      const fixture = await createV2Store(sourceUrl, { layout, count: 60 });
      const plan = planFor(sourceUrl, { rollbackWindow: '10m' });
      writeFileSync(plan.cutover.file, '{"kind":"postgres","url":"postgres://old/secondbrain"}\n');
      const handle = await start(plan);
      await waitForPhase(handle, 'await-approval');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      await waitForPhase(handle, 'rollback-window');

      // The v3 service after cutover: edits one memory, creates one.
      const target = plan.target.url;
      const edited = fixture.ids[0];
      await queryPostgres(target, `UPDATE memories SET content = 'edited in v3', updated_at = '2030-01-01T00:00:00.123456Z' WHERE id = $1`, [edited]);
      const added = uuidv4();
      await queryPostgres(
        target,
        `INSERT INTO memories (id, user_id, title, content, memory_type, status, importance_score, confidence_score, metadata, created_at, updated_at, accessed_at, retention_strength, retrieval_count, attachments)
         SELECT $1, id, 'New in v3', 'written in v3 after cutover', 'factual', 'active', 0.7, 1, '{"tags":["fresh"]}', '2030-01-02T00:00:00Z', '2030-01-02T00:00:00Z', '2030-01-02T00:00:00Z', 1, 0, '[]' FROM users LIMIT 1`,
        [added],
      );
      await queryPostgres(target, `INSERT INTO tags (id, name, user_id, usage_count, created_at, updated_at) SELECT $1, 'v3-only', id, 1, now(), now() FROM users LIMIT 1`, [uuidv4()]);
      await queryPostgres(target, `INSERT INTO memory_tags (memory_id, tag_id) SELECT $1, id FROM tags WHERE name = 'v3-only'`, [added]);
      const V28_COLUMNS = 'SELECT memory_type::text, importance_score::text, access_count, semantic_metadata, decay_applied FROM memories WHERE id = ANY($1::uuid[])';
      const editedColumnsBefore = layout === 'v2.8' ? await queryPostgres(sourceUrl, V28_COLUMNS, [[edited]]) : [];
      const v2Before = await queryPostgres<{ id: string; content: string }>(sourceUrl, 'SELECT id::text, content FROM memories WHERE id <> $1 ORDER BY id', [edited]);

      await handle.signal(rollbackSignal, { by: 'bob', reason: 'bad latency' });
      const result = await handle.result();
      expect(result.outcome).toBe('rolled-back');
      expect(result.notes.join('\n')).toMatch(/2 memories written in v3 after cutover carried back into v2 \(1 rows updated, 1 new\)/);
      expect(readFileSync(plan.cutover.file, 'utf8')).toBe('{"kind":"postgres","url":"postgres://old/secondbrain"}\n');
      const rows = await queryPostgres<{ id: string; content: string; metadata: Record<string, unknown>; updated: string }>(
        sourceUrl,
        `SELECT id::text, content, metadata, extract(epoch FROM updated_at)::text AS updated FROM memories WHERE id = ANY($1::uuid[]) ORDER BY content`,
        [[edited, added]],
      );
      expect(rows).toEqual([
        expect.objectContaining({ id: edited, content: 'edited in v3', updated: '1893456000.123456' }),
        expect.objectContaining({ id: added, content: 'written in v3 after cutover', metadata: { tags: ['v3-only'], title: 'New in v3', memory_type: 'factual' }, updated: '1893542400.000000' }),
      ]);
      if (layout === 'v2.8') {
        // v2.8's own columns come back from where the copy kept them; a type its enum lacks stays in metadata (above).
        expect(await queryPostgres(sourceUrl, V28_COLUMNS, [[edited]])).toEqual(editedColumnsBefore);
        expect(await queryPostgres(sourceUrl, V28_COLUMNS, [[added]])).toEqual([{ memory_type: 'semantic', importance_score: '0.7000', access_count: 0, semantic_metadata: {}, decay_applied: false }]);
      }
      // Every other v2 row is as it was.
      expect(await queryPostgres(sourceUrl, 'SELECT id::text, content FROM memories WHERE id <> ALL($1::uuid[]) ORDER BY id', [[edited, added]])).toEqual(v2Before);
      expect(await databaseExists(target)).toBe(true); // kept for inspection
    });
  });

  describe('bad input fails fast and writes nothing', () => {
    const expectRefused = async (plan: SecondBrainPlanInput, message: RegExp, type: string) => {
      const handle = await start(plan);
      expect(await failureMessage(handle)).toMatch(message);
      expect(await failureType(handle)).toBe(type);
      if (type !== 'InvalidPlan') expect(await activityAttempts(handle, 'preflightSecondBrain')).toBe(1);
      expect(await databaseExists(plan.target.url)).toBe(plan.target.url === occupied);
      expect(existsSync(plan.cutover.file)).toBe(false);
    };
    let occupied = '';

    it('a plan with a password in a URL', async () => {
      const url = new URL(v28.url);
      url.password = 'hunter2';
      const handle = await start(planFor(url.toString()));
      const message = await failureMessage(handle);
      expect(message).toMatch(/source\.url: must not contain a password/);
      expect(message).not.toContain('hunter2');
    });

    it('not a Second Brain database', async () => {
      const empty = await createDatabase(postgres.url, uniqueName('not_sb'));
      await expectRefused(planFor(empty), /is not a Second Brain database: it has no table public\.memories/, 'NotSecondBrainDatabase');
    });

    it('a v3 database named as the source', async () => {
      const v3 = await createDatabase(postgres.url, uniqueName('already_v3'));
      await queryPostgres(v3, v3SchemaDdl(DIMENSIONS));
      await expectRefused(planFor(v3), /already has the Second Brain v3 layout \(memories\.user_id, title, embedding_vector\)/, 'NotSecondBrainV2');
    });

    it('an unknown version (part of the v2.8 columns)', async () => {
      const odd = await createDatabase(postgres.url, uniqueName('odd_sb'));
      await queryPostgres(odd, `CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE memories (id uuid PRIMARY KEY, content text, metadata jsonb, embedding vector(${DIMENSIONS}), created_at timestamptz, updated_at timestamptz, importance_score numeric)`);
      await expectRefused(planFor(odd), /unknown Second Brain version/, 'UnknownSecondBrainVersion');
    });

    it('memories without an embedding anywhere, when the plan refuses them', async () => {
      await expectRefused(planFor(v20.url, { memories: { withoutEmbedding: 'refuse' } }), /21 memories have no embedding in v2: [0-9a-f-]{36}, /, 'MissingEmbeddings');
    });

    it('a dimension mismatch', async () => {
      await expectRefused(planFor(v28.url, { dimensions: 768 }), /Dimension mismatch: the v2 embeddings have 1536 dimensions, the plan's v3 schema 768/, 'DimensionMismatch');
    });

    it('an owner missing from the mapping', async () => {
      const plan = planFor(v20.url, { owner: { metadataField: 'owner', users: { alice: { email: 'alice@example.com', username: 'alice' } } } });
      await expectRefused(plan, /Owner missing: 210 memories name no user of owner\.users in metadata\.owner/, 'OwnerMissing');
    });

    it('a target database that is not empty', async () => {
      occupied = await createDatabase(postgres.url, uniqueName('busy'));
      await queryPostgres(occupied, 'CREATE TABLE notes (id int)');
      await expectRefused({ ...planFor(v28.url), target: { url: occupied } }, /is not empty \(tables notes\)/, 'TargetNotEmpty');
      expect(await queryPostgres(occupied, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).toEqual([{ tablename: 'notes' }]);
    });
  });
});
