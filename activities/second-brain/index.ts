/**
 * Activities of the Second Brain v2 → v3 runbook (workflows/second-brain-v3-migration.ts).
 * Each takes the validated plan (URLs and paths only) and returns counts,
 * ids (capped), paths and reports — never memories.
 *
 * Nothing lost: the v2 database is only read, except by a rollback carrying
 * post-cutover writes back; the service keeps writing to v2 during copy and
 * approval, and catch-ups follow it by watermark (updated_at, and for v2.8
 * the read stamps too) and by a deleted-id diff; only memories this run wrote
 * are ever removed from v3, and only a database or tables this run created are dropped.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { v5 as uuidv5 } from 'uuid';
import type { CheckResult, RollbackRequest, ValidationReport } from '../../workflows/messages';
import { describeDatabase, type SecondBrainPlan, type SecondBrainUser } from '../../workflows/second-brain-plan';
import { differingFields, payloadFingerprint } from '../compare';
import { currentWorkflow, heartbeatWhile } from '../context';
import { catchUpCopyChannel, workflowCopyChannel } from '../copy-channel';
import { copyChangedPoints, copyPointsResumably, readEveryPage, type CopyResult } from '../copy-engine';
import { assertLiveBackendFile, readLiveBackend, recordLiveBackend, restoreLiveBackend, untilQuiet, type ProtectedFiles } from '../cutover';
import { assertWritableFile, writeFileAtomically } from '../files';
import type { MemoryPoint } from '../stores/contract';
import { compareIds } from '../stores/key-order';
import { QdrantCollection } from '../stores/qdrant';
import { compareEveryPoint } from '../validation';
import { DATABASE_MISSING, databaseOf, inSnapshot, inTransaction, memoryIdsInOrder, quoteIdent, sameDatabase, withPool } from './databases';
import { V2Columns, V2MemorySource, inspectV2, watermarkNow, type Db, type FillVectors, type V2Shape, type V2Watermark, type V3Mapping } from './v2-source';
import { writeBackV2Rows } from './v2-write-back';
import { correlationIdFor, cut, isObject, sameFloat32Vector, userIdFor } from './v3-memory';
import { ALEMBIC_HEAD, EMBEDDING_MODEL_MAX_LENGTH, V3_TABLES, VECTOR_INDEX, createVectorIndex, ivfflatLists, v3SchemaDdl } from './v3-schema';
import { V3MemoryTarget } from './v3-target';

/** Ids named in results and errors are capped: history stays small. */
const MAX_IDS = 20;
const SCAN_PAGE = 500;

const run = promisify(execFile);

function fail(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

const listIds = (ids: string[]) => `${ids.slice(0, MAX_IDS).join(', ')}${ids.length > MAX_IDS ? ` and ${ids.length - MAX_IDS} more` : ''}`;

// --- the plan's choices ----------------------------------------------------------

function planUsers(plan: SecondBrainPlan): SecondBrainUser[] {
  return 'user' in plan.owner ? [plan.owner.user] : Object.values(plan.owner.users);
}

function mappingFor(plan: SecondBrainPlan, shape: V2Shape): V3Mapping {
  const owner = plan.owner;
  const ownerOf =
    'user' in owner
      ? () => userIdFor(owner.user.email)
      : (metadata: unknown) => {
          const value = isObject(metadata) ? metadata[owner.metadataField] : undefined;
          const user = typeof value === 'string' ? owner.users[value] : undefined;
          return user ? userIdFor(user.email) : null;
        };
  return { layout: shape.layout, ownerOf, tagsField: plan.memories.tagsField, untitled: plan.memories.untitled, defaultMemoryType: plan.memories.defaultMemoryType, embeddingModel: plan.memories.embeddingModel };
}

/** v1 stored each memory as a point with id uuid5(NAMESPACE_URL, memory id) and the memory id in payload `id`. */
const v1PointId = (memoryId: string) => uuidv5(memoryId, uuidv5.URL);

function qdrantFill(plan: SecondBrainPlan): FillVectors | undefined {
  const v1 = plan.source.qdrant;
  if (!v1) return undefined;
  const collection = new QdrantCollection(v1.url, v1.collection);
  return async (ids) => {
    const byPoint = new Map(ids.map((id) => [v1PointId(id), id]));
    const found = new Map<string, { vector: number[]; model: string | null }>();
    for (const point of await collection.retrieve([...byPoint.keys()])) {
      const memoryId = byPoint.get(point.id);
      if (!memoryId || String(point.payload.id) !== memoryId || point.vector.length !== plan.dimensions) continue;
      const meta = point.payload.meta;
      const model = isObject(meta) && typeof meta.embedding_model === 'string' ? cut(meta.embedding_model, EMBEDDING_MODEL_MAX_LENGTH) : null;
      found.set(memoryId, { vector: point.vector, model });
    }
    return found;
  };
}

interface SourceContext {
  pool: pg.Pool;
  shape: V2Shape;
  columns: V2Columns;
  mapping: V3Mapping;
}

async function withSource<T>(plan: SecondBrainPlan, use: (source: SourceContext) => Promise<T>): Promise<T> {
  return withPool(plan.source.url, async (pool) => {
    const shape = await inspectV2(pool, describeDatabase(plan.source.url));
    return use({ pool, shape, columns: new V2Columns(shape, plan.source.timestampsZone), mapping: mappingFor(plan, shape) });
  });
}

async function withTarget<T>(plan: SecondBrainPlan, use: (target: V3MemoryTarget, pool: pg.Pool) => Promise<T>): Promise<T> {
  return withPool(plan.target.url, (pool) => use(new V3MemoryTarget(pool, correlationIdFor(currentWorkflow().workflowId)), pool));
}

const openSource = (source: SourceContext, plan: SecondBrainPlan, db: Db = source.pool, since?: V2Watermark) =>
  V2MemorySource.open(db, source.columns, source.mapping, qdrantFill(plan), since);

// --- files this run writes ------------------------------------------------------------

function runFiles(plan: SecondBrainPlan, workflowId: string) {
  const dir = path.join(plan.backup.dir, workflowId.replace(/[^A-Za-z0-9_.-]/g, '_'));
  return {
    dir,
    dump: path.join(dir, 'source.dump'),
    partialDump: path.join(dir, 'source.dump.partial'),
    /** What the target held before this run and what this run created there. */
    targetBefore: path.join(dir, 'target-before.json'),
    /** The v3 memories as this run left them at cutover: id → fingerprint; rollback diffs against it. */
    cutover: path.join(dir, 'target-at-cutover.json'),
  };
}

const protectedFiles = (plan: SecondBrainPlan): ProtectedFiles => [{ file: runFiles(plan, currentWorkflow().workflowId).dump, what: 'the source backup' }];

async function readJson<T>(file: string): Promise<T | null> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw ApplicationFailure.nonRetryable(`Cannot read this run's record ${file}: ${err.code ?? err.message}. Nothing was changed; restore the file and retry.`, 'RunRecordUnreadable');
  });
  return text === null ? null : (JSON.parse(text) as T);
}

async function writeJson(plan: SecondBrainPlan, file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomically(file, JSON.stringify(value), 'backup.dir', protectedFiles(plan));
}

interface TargetBefore {
  createdDatabase: boolean;
  createdTables: boolean;
  /** Whether the pgvector extension was there before (an empty database someone else created may lack it). */
  hadVectorExtension?: boolean;
  /** Memory ids the target held before this run (existingTarget: resume): no removal touches them. */
  ids: string[];
  /** The plan's users the target held before this run (existingTarget: resume): a rejection removes only the others. */
  userIds?: string[];
  /** The source watermark taken before the copy began: the first catch-up starts here. */
  watermark: V2Watermark;
}

interface CutoverRecord {
  watermark: V2Watermark;
  fingerprints: Record<string, string>;
  /** Set by rollback just before it points the service back at v2. */
  switchedBackAt?: string;
}

const fingerprint = (point: MemoryPoint) => payloadFingerprint({ payload: point.payload, vector: point.vector.map(Math.fround) });

// --- target state ------------------------------------------------------------------------

type TargetState = { kind: 'missing' } | { kind: 'empty' } | { kind: 'v3'; memories: number; alembic: string | null } | { kind: 'other'; tables: string[] };

async function inspectTarget(plan: SecondBrainPlan): Promise<TargetState> {
  return withPool(plan.target.url, async (pool) => {
    const listed = await pool.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`).catch((err: { code?: string }) => {
      if (err.code === DATABASE_MISSING) return null;
      throw err;
    });
    if (listed === null) return { kind: 'missing' as const };
    const tables = listed.rows.map((r) => r.name);
    if (tables.length === 0) return { kind: 'empty' as const };
    if (!tables.includes('memories') || !tables.includes('alembic_version')) return { kind: 'other' as const, tables };
    const alembic = await pool.query<{ v: string }>('SELECT version_num AS v FROM alembic_version');
    const memories = await pool.query<{ n: string }>('SELECT count(*) AS n FROM memories');
    return { kind: 'v3' as const, memories: Number(memories.rows[0].n), alembic: alembic.rows[0]?.v ?? null };
  }, 1);
}

// --- catch-up -------------------------------------------------------------------------------

export interface CatchUpResult {
  watermark: V2Watermark;
  upserted: number;
  removed: number;
}

/**
 * Brings v3 to v2 as `db`'s snapshot shows it: rows changed since `since`
 * through the copy engine (rows v3 already holds as read are skipped), and
 * memories this run wrote whose v2 row is gone are removed. With
 * `leftAtCutover` (after the switch), a memory the service changed or
 * created in v3 since is never overwritten or removed.
 */
async function catchUp(
  client: Client,
  plan: SecondBrainPlan,
  source: SourceContext,
  db: Db,
  target: V3MemoryTarget,
  since: V2Watermark,
  leftAtCutover?: Record<string, string>,
): Promise<CatchUpResult> {
  const watermark = await watermarkNow(db);
  const upserted = await copyChangedPoints({
    source: await openSource(source, plan, db, since),
    target,
    channel: catchUpCopyChannel(client),
    alreadyHeld: (point, stored) => differingFields(point.payload, stored.payload).length === 0 && sameFloat32Vector(point.vector, stored.vector),
    fingerprint,
    leftAtCutover,
  });
  const removed = await removeDeleted(plan, db, target, leftAtCutover);
  return { watermark, upserted, removed };
}

/**
 * The deleted-id diff: memories this run wrote whose v2 row is gone. A merge
 * of both id lists in uuid order, a page of each at a time, not every id of
 * both databases in memory.
 */
async function removeDeleted(plan: SecondBrainPlan, db: Db, target: V3MemoryTarget, leftAtCutover?: Record<string, string>): Promise<number> {
  const before = new Set((await readJson<TargetBefore>(runFiles(plan, currentWorkflow().workflowId).targetBefore))?.ids ?? []);
  const inSource = memoryIdsInOrder(db);
  let sourceId = (await inSource.next()).value;
  let removed = 0;
  let gone: string[] = [];
  const remove = async () => {
    let removable = gone.filter((id) => !before.has(id));
    gone = [];
    if (leftAtCutover) {
      // Only memories v3 still holds as this run left them: one created or changed there after cutover stays.
      const points = await target.retrieve(removable);
      removable = points.filter((p) => leftAtCutover[p.id] === fingerprint(p)).map((p) => p.id);
    }
    await target.deleteMemories(removable);
    if (leftAtCutover) for (const id of removable) delete leftAtCutover[id];
    removed += removable.length;
  };
  for await (const id of target.idsInOrder()) {
    while (sourceId !== undefined && compareIds(sourceId, id) < 0) sourceId = (await inSource.next()).value;
    if (sourceId !== id) gone.push(id);
    if (gone.length === SCAN_PAGE) await remove();
  }
  await remove();
  return removed;
}

async function* scanTarget(target: V3MemoryTarget): AsyncGenerator<MemoryPoint[]> {
  let after: string | null = null;
  for (;;) {
    const page: MemoryPoint[] = await target.page(after, SCAN_PAGE);
    Context.current().heartbeat();
    if (page.length === 0) return;
    yield page;
    after = page[page.length - 1].id;
  }
}

/** Tag usage counts, links from metadata, statistics: what v3 derives from the memories, refreshed after each change of them. */
async function refreshDerived(plan: SecondBrainPlan, pool: pg.Pool): Promise<{ links: number }> {
  await pool.query(`UPDATE tags SET usage_count = u.n FROM (SELECT t.id, count(mt.memory_id)::int AS n FROM tags t LEFT JOIN memory_tags mt ON mt.tag_id = t.id GROUP BY t.id) u
    WHERE tags.id = u.id AND tags.usage_count <> u.n`);
  let links = 0;
  const field = plan.memories.linksField;
  if (field) {
    // Only uuid-shaped ids of memories that exist; a link to a memory v2 no longer has is left out.
    const result = await pool.query(
      `INSERT INTO memory_links (from_memory_id, to_memory_id, link_type)
       SELECT m.id, target.id, 'related' FROM memories m
       CROSS JOIN LATERAL json_array_elements_text(CASE WHEN json_typeof(m.metadata -> $1) = 'array' THEN m.metadata -> $1 ELSE '[]'::json END) AS l(ref)
       JOIN memories target ON l.ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' AND target.id = l.ref::uuid
       WHERE target.id <> m.id
       ON CONFLICT DO NOTHING`,
      [field],
    );
    links = result.rowCount ?? 0;
  }
  await pool.query('ANALYZE memories');
  return { links };
}

// --- validation --------------------------------------------------------------------------------

interface Exhaustive {
  compared: number;
  perOwner: Map<string, number>;
  differing: number;
  /** The first differing memories by id, capped. */
  errors: string[];
  withoutVector: number;
}

/**
 * Every v2 memory (in `db`'s snapshot) against its v3 row through the shared
 * merge (activities/validation.ts): id, every field (the event and the JSON
 * embedding as the verdicts V3MemoryTarget computes), vector to float32. The
 * v3 side is read by the ids of each v2 page: memories a resumed target held
 * before this run are not v2's to judge.
 */
async function compareEveryMemory(plan: SecondBrainPlan, source: SourceContext, db: Db, target: V3MemoryTarget): Promise<Exhaustive> {
  const reader = await openSource(source, plan, db);
  const perOwner = new Map<string, number>();
  let withoutVector = 0;
  const pages = pagedBySourceIds(async function* () {
    let cursor: string | null = null;
    do {
      const page = await reader.readPage(cursor, SCAN_PAGE);
      cursor = page.next;
      for (const p of page.points) {
        perOwner.set(String(p.payload.user_id), (perOwner.get(String(p.payload.user_id)) ?? 0) + 1);
        if (p.vector.length === 0) withoutVector++;
      }
      yield page.points;
    } while (cursor !== null);
  }(), (ids) => target.retrieve(ids));
  const every = await compareEveryPoint(pages.source, pages.target, {
    vectorsCopied: false, // compared float32-exact below, not within the shared bound
    writtenSince: () => false, // one snapshot, after the catch-up: any difference is the copy's
    extraProblem: (expected, actual) => (sameFloat32Vector(expected.vector, actual.vector) ? null : 'embedding_vector differs'),
    payloadDetail: (fields, actual) => (fields.includes('event') ? ` (event: ${actual.payload.event})` : ''),
  }, () => Context.current().heartbeat());
  return { compared: every.compared, perOwner, differing: every.missing + every.extra + every.different, errors: every.problems, withoutVector };
}

/**
 * One stream of source pages and, page for page, the target's points with the
 * same ids (in id order), for compareEveryPoint: each target page waits for
 * its source page's ids.
 */
function pagedBySourceIds(source: AsyncIterable<MemoryPoint[]>, retrieve: (ids: string[]) => Promise<MemoryPoint[]>) {
  const idsOfPage: Promise<string[] | null>[] = [];
  const handOver: ((ids: string[] | null) => void)[] = [];
  const slot = (n: number) => {
    while (idsOfPage.length <= n) idsOfPage.push(new Promise((resolve) => handOver.push(resolve)));
    return n;
  };
  return {
    source: (async function* () {
      let n = 0;
      for await (const page of source) {
        handOver[slot(n++)](page.map((p) => p.id));
        yield page;
      }
      handOver[slot(n)](null);
    })(),
    target: (async function* () {
      for (let n = 0; ; n++) {
        const ids = await idsOfPage[slot(n)];
        if (ids === null) return;
        yield (await retrieve(ids)).sort((a, b) => compareIds(a.id, b.id));
      }
    })(),
  };
}

/** Vector search on a sample: each memory's own vector finds itself first (or a memory at distance 0). */
async function searchFindsItself(pool: pg.Pool, sample: number): Promise<{ tried: number; failed: string[] }> {
  if (sample === 0) return { tried: 0, failed: [] };
  return inTransaction(pool, async (client) => {
    const { rows: lists } = await client.query<{ n: string }>('SELECT count(*) AS n FROM memories WHERE embedding_vector IS NOT NULL');
    // Every list probed: the search is exact, so a miss is a wrong vector, not the index's recall.
    await client.query(`SET LOCAL ivfflat.probes = ${Math.max(1, ivfflatLists(Number(lists[0].n)))}`);
    const { rows: ids } = await client.query<{ id: string }>(
      'SELECT id::text AS id FROM memories WHERE embedding_vector IS NOT NULL ORDER BY md5(id::text) LIMIT $1',
      [sample],
    );
    const failed: string[] = [];
    for (const { id } of ids) {
      const { rows } = await client.query<{ id: string; distance: number }>(
        `SELECT m.id::text AS id, m.embedding_vector <=> q.v AS distance
         FROM memories m, (SELECT embedding_vector AS v FROM memories WHERE id = $1) q
         WHERE m.embedding_vector IS NOT NULL ORDER BY m.embedding_vector <=> q.v LIMIT 1`,
        [id],
      );
      if (!rows[0] || (rows[0].id !== id && rows[0].distance > 1e-6)) failed.push(id);
    }
    return { tried: ids.length, failed };
  });
}

async function eventIntegrity(pool: pg.Pool): Promise<{ events: number; orphans: number; memories: number }> {
  const { rows } = await pool.query<{ events: string; orphans: string; memories: string }>(
    `SELECT (SELECT count(*) FROM events) AS events,
            (SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM memories m WHERE m.id = e.aggregate_id)) AS orphans,
            (SELECT count(*) FROM memories) AS memories`,
  );
  return { events: Number(rows[0].events), orphans: Number(rows[0].orphans), memories: Number(rows[0].memories) };
}

// --- pg_dump ---------------------------------------------------------------------------------------

/**
 * Where the worker finds pg_dump and pg_restore: MEMSHIFT_PG_BIN_DIR (a
 * worker setting, like credentials: plans stay portable between workers),
 * else the PATH. They must be at least the server's major version.
 */
function pgBinary(name: 'pg_dump' | 'pg_restore'): string {
  const dir = process.env.MEMSHIFT_PG_BIN_DIR;
  return dir ? path.join(dir, name) : name;
}

async function runPgTool(name: 'pg_dump' | 'pg_restore', args: string[]): Promise<string> {
  try {
    const { stdout } = await run(pgBinary(name), args, { maxBuffer: 64 * 1024 * 1024, timeout: 24 * 3600_000 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') fail(`${pgBinary(name)} not found: set MEMSHIFT_PG_BIN_DIR in the worker's environment to the PostgreSQL binaries' directory.`, 'PgToolMissing');
    // pg_dump's own message names connections and objects, never row contents.
    const last = (e.stderr ?? e.message).trim().split('\n').slice(-2).join(' ').slice(0, 400);
    if (/server version mismatch|authentication failed|does not exist|permission denied/.test(last)) fail(`${name} failed: ${last}`, 'BackupFailed');
    throw ApplicationFailure.retryable(`${name} failed: ${last}`, 'BackupFailed');
  }
}

// --- activities --------------------------------------------------------------------------------------

export interface SecondBrainPreflight {
  layout: V2Shape['layout'];
  memories: number;
  dimensions: number;
  /** Memories with no embedding in v2. */
  withoutEmbedding: number;
  /** Of those, how many the v1 Qdrant collection fills. */
  filledFromQdrant: number;
  /** Memories that will have no embedding in v3, by id (capped). */
  stillWithoutEmbedding: string[];
  stillWithoutEmbeddingCount: number;
  users: number;
  target: TargetState['kind'];
  qdrantPoints: number | null;
}

export function secondBrainActivities({ client }: { client: Client }) {
  return {
    /** Everything checked before anything is written; every refusal names what to fix. */
    async preflightSecondBrain(plan: SecondBrainPlan): Promise<SecondBrainPreflight> {
      if (sameDatabase(plan.source.url, plan.target.url)) {
        fail(`target.url names the source database (${describeDatabase(plan.source.url)}); v3 goes into a database of its own. Nothing was written.`, 'TargetIsSource');
      }
      const files = runFiles(plan, currentWorkflow().workflowId);
      await assertWritableFile(files.dump, 'backup.dir');
      await assertLiveBackendFile(plan.cutover.file, protectedFiles(plan));
      const target = await inspectTarget(plan);
      const prepared = await readJson<TargetBefore>(files.targetBefore); // this run's own retry finds its own tables
      if (!prepared && (target.kind === 'other' || (target.kind === 'v3' && plan.existingTarget !== 'resume'))) {
        const what = target.kind === 'other' ? `tables ${target.tables.slice(0, 5).join(', ')}` : `a v3 schema with ${target.memories} memories`;
        fail(`The target database ${describeDatabase(plan.target.url)} is not empty (${what}); memshift never writes into a database it did not create unless existingTarget is 'resume' (for a v3 database an earlier run filled). Nothing was written.`, 'TargetNotEmpty');
      }
      if (target.kind === 'v3' && target.alembic !== ALEMBIC_HEAD) {
        fail(`The target's alembic_version is ${target.alembic ?? 'empty'}, not ${ALEMBIC_HEAD}; memshift resumes only into the v3.0 schema. Nothing was written.`, 'TargetSchemaUnknown');
      }
      if (target.kind === 'missing') {
        const { name } = databaseOf(plan.target.url);
        if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) fail(`target.url: database name must be a plain SQL identifier to be created. Nothing was written.`, 'InvalidPlan');
      }
      const qdrant = plan.source.qdrant ? new QdrantCollection(plan.source.qdrant.url, plan.source.qdrant.collection) : null;
      let qdrantPoints: number | null = null;
      if (qdrant) {
        const described = await qdrant.describe();
        if (!described.exists) fail(`source.qdrant: collection ${plan.source.qdrant!.collection} does not exist at ${new URL(plan.source.qdrant!.url).host}. Nothing was written.`, 'QdrantCollectionMissing');
        if (described.dimensions !== plan.dimensions) {
          fail(`Dimension mismatch: the v1 collection's vectors have ${described.dimensions} dimensions, the plan's v3 schema ${plan.dimensions}. Nothing was written.`, 'DimensionMismatch');
        }
        qdrantPoints = described.points;
      }
      return withSource(plan, async (source) => {
        const { pool, shape } = source;
        if (shape.dimensions !== plan.dimensions) {
          fail(`Dimension mismatch: the v2 embeddings have ${shape.dimensions} dimensions, the plan's v3 schema ${plan.dimensions} (set dimensions to ${shape.dimensions} if v3 should store them as they are). Nothing was written.`, 'DimensionMismatch');
        }
        if (shape.naiveTimestamps) {
          await pool.query('SELECT now() AT TIME ZONE $1', [plan.source.timestampsZone]).catch(() =>
            fail(`source.timestampsZone: PostgreSQL does not know the time zone '${plan.source.timestampsZone}'. Nothing was written.`, 'InvalidPlan'),
          );
        }
        const counts = await pool.query<{ n: string; no_time: string }>(`SELECT count(*) AS n, count(*) FILTER (WHERE created_at IS NULL AND updated_at IS NULL) AS no_time FROM memories`);
        if (Number(counts.rows[0].no_time) > 0) {
          const { rows } = await pool.query<{ id: string }>('SELECT id::text AS id FROM memories WHERE created_at IS NULL AND updated_at IS NULL ORDER BY id LIMIT $1', [MAX_IDS]);
          fail(`${counts.rows[0].no_time} memories have neither created_at nor updated_at, which v3 requires: ${listIds(rows.map((r) => r.id))}. Set them in v2 and start again. Nothing was written.`, 'MissingTimestamps');
        }
        if ('metadataField' in plan.owner) {
          const { rows } = await pool.query<{ id: string }>(
            `SELECT id::text AS id FROM memories WHERE NOT (coalesce(metadata ->> $1, '') = ANY($2::text[])) ORDER BY id`,
            [plan.owner.metadataField, Object.keys(plan.owner.users)],
          );
          if (rows.length) {
            fail(`Owner missing: ${rows.length} memories name no user of owner.users in metadata.${plan.owner.metadataField}: ${listIds(rows.map((r) => r.id))}. Add their values to owner.users. Nothing was written.`, 'OwnerMissing');
          }
        }
        const { rows: lacking } = await pool.query<{ id: string }>('SELECT id::text AS id FROM memories WHERE embedding IS NULL ORDER BY id');
        const fill = qdrantFill(plan);
        let still = lacking.map((r) => r.id);
        if (fill) {
          const remaining: string[] = [];
          for (let i = 0; i < still.length; i += SCAN_PAGE) {
            const batch = still.slice(i, i + SCAN_PAGE);
            const found = await fill(batch);
            remaining.push(...batch.filter((id) => !found.has(id)));
          }
          still = remaining;
        }
        if (still.length && plan.memories.withoutEmbedding === 'refuse') {
          fail(`${still.length} memories have no embedding in v2${fill ? ' nor in the v1 collection' : ''}: ${listIds(still)}. Embed them, or set memories.withoutEmbedding to 'copy'. Nothing was written.`, 'MissingEmbeddings');
        }
        return {
          layout: shape.layout,
          memories: Number(counts.rows[0].n),
          dimensions: shape.dimensions,
          withoutEmbedding: lacking.length,
          filledFromQdrant: lacking.length - still.length,
          stillWithoutEmbedding: still.slice(0, MAX_IDS),
          stillWithoutEmbeddingCount: still.length,
          users: planUsers(plan).length,
          target: target.kind,
          qdrantPoints,
        };
      });
    },

    /** pg_dump of the v2 database (custom format), checked with pg_restore --list; idempotent on retry. */
    async backupSecondBrainSource(plan: SecondBrainPlan): Promise<{ path: string; bytes: number; entries: number }> {
      const files = runFiles(plan, currentWorkflow().workflowId);
      await assertWritableFile(files.partialDump, 'backup.dir');
      await fs.mkdir(files.dir, { recursive: true });
      if (!(await fs.stat(files.dump).catch(() => null))) {
        await fs.rm(files.partialDump, { force: true });
        await heartbeatWhile(() => runPgTool('pg_dump', ['--format=custom', '--no-password', `--file=${files.partialDump}`, `--dbname=${plan.source.url}`]));
        await fs.rename(files.partialDump, files.dump);
      }
      const listing = await runPgTool('pg_restore', ['--list', files.dump]);
      const entries = listing.split('\n').filter((l) => /^\d+;/.test(l));
      if (!entries.some((l) => /TABLE DATA public memories /.test(l))) {
        fail(`Backup ${files.dump} did not verify: pg_restore --list shows no data for public.memories.`, 'BackupUnverified');
      }
      return { path: files.dump, bytes: (await fs.stat(files.dump)).size, entries: entries.length };
    },

    /** Reads every memory as the copy would, writes nothing; estimates the copy from the read rate. */
    async dryRunSecondBrain(plan: SecondBrainPlan): Promise<{ memories: number; batches: number; readSeconds: number; estimatedSeconds: number }> {
      return withSource(plan, async (source) => {
        const { memories, batches, readSeconds } = await readEveryPage(await openSource(source, plan), plan.copy.batchSize);
        // A v3 batch writes each memory three times over (row, event, tags): about twice the read, spread over the concurrency.
        const estimatedSeconds = Math.ceil(readSeconds + (2 * readSeconds) / plan.copy.concurrency);
        return { memories, batches, readSeconds: Number(readSeconds.toFixed(2)), estimatedSeconds };
      });
    },

    /**
     * Creates the v3 database if missing and its schema (memshift's DDL of
     * alembic 001 + 002, alembic_version '002') in one transaction, and the
     * plan's users; records what it created, so a rejection drops only that.
     */
    async prepareSecondBrainTarget(plan: SecondBrainPlan): Promise<{ createdDatabase: boolean; createdTables: boolean; kept: number; watermark: V2Watermark }> {
      const files = runFiles(plan, currentWorkflow().workflowId);
      let record = await readJson<TargetBefore>(files.targetBefore);
      if (!record) {
        const state = await inspectTarget(plan);
        const watermark = await withPool(plan.source.url, watermarkNow, 1);
        // Recorded before creating: a crash in between leaves a record that names what this run may drop.
        record = { createdDatabase: state.kind === 'missing', createdTables: state.kind === 'missing' || state.kind === 'empty', ids: [], watermark };
        if (state.kind === 'v3') {
          record.ids = await withTarget(plan, (target) => target.ids());
          const planned = planUsers(plan).map((user) => userIdFor(user.email));
          record.userIds = await withPool(plan.target.url, async (pool) => (await pool.query<{ id: string }>('SELECT id::text AS id FROM users WHERE id = ANY($1::uuid[])', [planned])).rows.map((r) => r.id), 1);
        }
        if (state.kind === 'empty') {
          record.hadVectorExtension = await withPool(plan.target.url, async (pool) => (await pool.query(`SELECT 1 FROM pg_extension WHERE extname = 'vector'`)).rowCount === 1, 1);
        }
        await writeJson(plan, files.targetBefore, record);
      }
      if (record.createdDatabase) {
        const { name, maintenanceUrl } = databaseOf(plan.target.url);
        await withPool(maintenanceUrl, async (pool) => {
          const exists = await pool.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
          if (exists.rowCount === 0) await pool.query(`CREATE DATABASE ${quoteIdent(name)}`);
        }, 1);
      }
      await withTarget(plan, async (_target, pool) => {
        await inTransaction(pool, async (client) => {
          const hasSchema = await client.query(`SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'alembic_version'`);
          if (hasSchema.rowCount === 0) {
            if (!record.createdTables) fail('The target lost its v3 schema since this run began; stopping rather than guessing. Nothing more was written.', 'TargetChanged');
            await client.query(v3SchemaDdl(plan.dimensions));
          }
          for (const user of planUsers(plan)) {
            await client.query(
              `INSERT INTO users (id, email, username, full_name, password_hash, role, is_active, is_verified, preferences, created_at, updated_at, memory_limit, storage_limit_mb, api_rate_limit)
               VALUES ($1, $2, $3, $4, '!', 'user', true, false, '{}', now(), now(), $5, 10000, 1000)
               ON CONFLICT (id) DO NOTHING`,
              // '!' matches no password hash: the user sets one through v3's reset. The limit never refuses the memories they already have.
              [userIdFor(user.email), user.email, user.username, user.fullName ?? null, 1_000_000],
            );
          }
        });
      });
      return { createdDatabase: record.createdDatabase, createdTables: record.createdTables, kept: record.ids.length, watermark: record.watermark };
    },

    async copySecondBrainMemories(plan: SecondBrainPlan): Promise<CopyResult> {
      return withSource(plan, async (source) =>
        withTarget(plan, async (target) =>
          copyPointsResumably({ source: await openSource(source, plan), target, channel: workflowCopyChannel(client) }),
        ),
      );
    },

    /** After the copy: tag counts, links, and the ivfflat index with lists sized to the rows (pgvector's advice). */
    async indexSecondBrainTarget(plan: SecondBrainPlan): Promise<{ lists: number; links: number }> {
      return heartbeatWhile(() =>
        withTarget(plan, async (_target, pool) => {
          const { links } = await refreshDerived(plan, pool);
          const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM memories WHERE embedding_vector IS NOT NULL');
          const lists = ivfflatLists(Number(rows[0].n));
          await createVectorIndex(pool, lists, plan.dimensions);
          return { lists, links };
        }),
      );
    },

    async catchUpSecondBrain(plan: SecondBrainPlan, since: V2Watermark): Promise<CatchUpResult> {
      return heartbeatWhile(() => withSource(plan, (source) =>
        withTarget(plan, async (target, pool) => {
          const caught = await inSnapshot(source.pool, (db) => catchUp(client, plan, source, db, target, since));
          if (caught.upserted + caught.removed > 0) await refreshDerived(plan, pool);
          return caught;
        }),
      ));
    },

    /**
     * Catches up, then validates in the same source snapshot: every memory's
     * id, fields, vector (float32-exact) and event; no orphan events; vector
     * search finds each sampled memory itself. Names ids only.
     */
    async validateSecondBrainCopy(plan: SecondBrainPlan, since: V2Watermark): Promise<{ report: ValidationReport; watermark: V2Watermark }> {
      return heartbeatWhile(() => withSource(plan, (source) =>
        withTarget(plan, async (target, pool) => {
          const { caught, every } = await inSnapshot(source.pool, async (db) => {
            const caught = await catchUp(client, plan, source, db, target, since);
            await refreshDerived(plan, pool);
            return { caught, every: await compareEveryMemory(plan, source, db, target) };
          });
          const events = await eventIntegrity(pool);
          const search = await searchFindsItself(pool, plan.validation.searchSample);
          const users = new Map(planUsers(plan).map((u) => [userIdFor(u.email), u.username]));
          const { rows: targetOwners } = await pool.query<{ user_id: string; n: string }>('SELECT user_id::text AS user_id, count(*) AS n FROM memories GROUP BY 1');
          const inTarget = new Map(targetOwners.map((r) => [r.user_id, Number(r.n)]));
          const perUser = [...users].map(([id, name]) => ({ user: name, source: every.perOwner.get(id) ?? 0, target: inTarget.get(id) ?? 0 }));
          const differing = every.differing;
          const userMismatches = perUser.filter((u) => u.source !== u.target);
          const checks: CheckResult[] = [
            { name: 'count', ok: every.compared === events.memories, detail: `v2 ${every.compared}, v3 ${events.memories}` },
            { name: 'per-user counts', ok: userMismatches.length === 0, detail: `${perUser.length} users${userMismatches.length ? `, ${userMismatches.length} differ` : ' match'}` },
            { name: 'every memory', ok: differing === 0, detail: `${every.compared} compared field by field (vector to float32, event data), ${differing} differ` },
            {
              name: 'events',
              ok: events.events === events.memories && events.orphans === 0,
              detail: `${events.events} events for ${events.memories} memories, ${events.orphans} without their memory`,
            },
            { name: 'vector search', ok: search.failed.length === 0, detail: `${search.tried} sampled memories searched by their own vector, ${search.failed.length} not found first${search.failed.length ? `: ${listIds(search.failed)}` : ''}` },
            { name: 'without embedding', ok: true, detail: `${every.withoutVector} memories have no embedding (kept without one, as the plan says)` },
            { name: 'live writes', ok: true, detail: `validated at the v2 snapshot ${caught.watermark.at}; the catch-up wrote ${caught.upserted} and removed ${caught.removed}; later writes are copied before and at cutover` },
          ];
          const report: ValidationReport = {
            ok: checks.every((c) => c.ok),
            sourceCount: every.compared,
            targetCount: events.memories,
            perUser,
            sampled: every.compared,
            minCosine: null,
            checks,
            errors: every.errors,
          };
          return { report, watermark: caught.watermark };
        }),
      ));
    },

    /**
     * The switch: catch up, record v3 as this run leaves it, point the
     * live-backend file at v3, then copy what landed in v2 in between —
     * never over a memory the service has since written in v3.
     */
    async cutOverSecondBrain(plan: SecondBrainPlan, since: V2Watermark): Promise<{ memories: number; caughtUp: number; removed: number }> {
      const { workflowId } = currentWorkflow();
      const files = runFiles(plan, workflowId);
      return heartbeatWhile(() => withSource(plan, (source) =>
        withTarget(plan, async (target, pool) => {
          let record = await readJson<CutoverRecord>(files.cutover);
          const switched = (await readLiveBackend(plan.cutover.file))?.workflowId === workflowId;
          let caughtUp = 0;
          let removed = 0;
          if (!switched || !record) {
            const before = await inSnapshot(source.pool, (db) => catchUp(client, plan, source, db, target, since));
            const fingerprints: Record<string, string> = {};
            for await (const page of scanTarget(target)) for (const point of page) fingerprints[point.id] = fingerprint(point);
            record = { watermark: before.watermark, fingerprints };
            await writeJson(plan, files.cutover, record);
            await recordLiveBackend(
              plan.cutover.file,
              { kind: 'postgres', url: plan.target.url, name: describeDatabase(plan.target.url), workflowId, schema: 'second-brain-v3', alembic: ALEMBIC_HEAD },
              protectedFiles(plan),
            );
            [caughtUp, removed] = [before.upserted, before.removed];
          }
          const cutoverRecord = record;
          await untilQuiet(async () => {
            const gap = await inSnapshot(source.pool, (db) => catchUp(client, plan, source, db, target, cutoverRecord.watermark, cutoverRecord.fingerprints));
            cutoverRecord.watermark = gap.watermark;
            await writeJson(plan, files.cutover, cutoverRecord);
            caughtUp += gap.upserted;
            removed += gap.removed;
            return gap.upserted + gap.removed;
          });
          await refreshDerived(plan, pool);
          return { memories: Object.keys(cutoverRecord.fingerprints).length, caughtUp, removed };
        }),
      ));
    },

    /** After cutover: the live-backend file names v3, v3 answers, and its schema is at alembic head. */
    async verifySecondBrainCutover(plan: SecondBrainPlan): Promise<{ memories: number }> {
      const live = await readLiveBackend(plan.cutover.file);
      if (live?.name !== describeDatabase(plan.target.url)) fail(`${plan.cutover.file} does not name ${describeDatabase(plan.target.url)} as the live database`, 'VerifyFailed');
      const state = await inspectTarget(plan);
      if (state.kind !== 'v3' || state.alembic !== ALEMBIC_HEAD) fail(`The v3 database is not at alembic ${ALEMBIC_HEAD} after cutover`, 'VerifyFailed');
      return { memories: state.memories };
    },

    /**
     * Undo a cutover keeping every write: carry v3 memories new or changed
     * since cutover into v2 as v2 rows while v3 is live, switch back, carry
     * what landed in between (never over a v2 row the service changed after
     * cutover), and keep v3 for inspection.
     */
    async rollbackSecondBrain(plan: SecondBrainPlan, request: RollbackRequest | null): Promise<{ summary: string }> {
      const { workflowId } = currentWorkflow();
      const files = runFiles(plan, workflowId);
      const record = await readJson<CutoverRecord>(files.cutover);
      if (!record) {
        await restoreLiveBackend(plan.cutover.file, workflowId, protectedFiles(plan));
        return { summary: `${plan.cutover.file} restored; v3 was never live, nothing to carry back.` };
      }
      return withSource(plan, (source) =>
        withTarget(plan, async (target) => {
          const totals = { updated: 0, inserted: 0, skipped: [] as string[] };
          const carry = async () => {
            const changed: MemoryPoint[] = [];
            for await (const page of scanTarget(target)) changed.push(...page.filter((p) => record.fingerprints[p.id] !== fingerprint(p)));
            let moved = 0;
            for (let i = 0; i < changed.length; i += SCAN_PAGE) {
              const batch = changed.slice(i, i + SCAN_PAGE);
              const result = await writeBackV2Rows(source.pool, source.columns, source.mapping, batch, record.watermark);
              totals.updated += result.updated;
              totals.inserted += result.inserted;
              totals.skipped.push(...result.skipped);
              for (const point of batch) if (!result.skipped.includes(point.id)) record.fingerprints[point.id] = fingerprint(point);
              moved += result.updated + result.inserted;
            }
            await writeJson(plan, files.cutover, record);
            return moved;
          };
          const live = (await readLiveBackend(plan.cutover.file))?.workflowId === workflowId;
          if (live || record.switchedBackAt === undefined) {
            await carry();
            record.switchedBackAt = new Date().toISOString();
            await writeJson(plan, files.cutover, record);
            await restoreLiveBackend(plan.cutover.file, workflowId, protectedFiles(plan));
          }
          await untilQuiet(carry);
          const inV3 = new Set(await target.ids());
          const deletedInV3 = Object.keys(record.fingerprints).filter((id) => !inV3.has(id));
          const notes = [
            `${plan.cutover.file} restored`,
            `${totals.updated + totals.inserted} memories written in v3 after cutover carried back into v2 (${totals.updated} rows updated, ${totals.inserted} new)`,
            `${describeDatabase(plan.target.url)} kept for inspection`,
          ];
          if (totals.skipped.length) notes.push(`${totals.skipped.length} v2 rows the service changed after cutover kept as it wrote them (${listIds(totals.skipped)})`);
          if (deletedInV3.length) notes.push(`${deletedInV3.length} memories deleted in v3 after cutover are kept in v2 (${listIds(deletedInV3)})`);
          if (request?.mode === 'restore-backup') notes.push(`restore-backup is not done automatically: the backup is ${files.dump}`);
          return { summary: `${notes.join('; ')}.` };
        }),
      );
    },

    /** After a rejection or timeout: a database this run created is dropped; tables it created are dropped; otherwise only the memories it added. */
    async removeSecondBrainRunWrites(plan: SecondBrainPlan): Promise<{ summary: string }> {
      const before = await readJson<TargetBefore>(runFiles(plan, currentWorkflow().workflowId).targetBefore);
      const where = describeDatabase(plan.target.url);
      if (!before) return { summary: `Nothing to remove: this run never prepared ${where}` };
      if (before.createdDatabase) {
        const { name, maintenanceUrl } = databaseOf(plan.target.url);
        await withPool(maintenanceUrl, (pool) => pool.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`), 1);
        return { summary: `Dropped the database ${where}, which this run created` };
      }
      if (before.createdTables) {
        await withPool(plan.target.url, async (pool) => {
          await pool.query(`DROP TABLE IF EXISTS ${V3_TABLES.join(', ')}`);
          if (before.hadVectorExtension === false) await pool.query('DROP EXTENSION IF EXISTS vector');
        }, 1);
        const extension = before.hadVectorExtension === false ? ' and the pgvector extension' : '';
        return { summary: `Dropped the v3 tables this run created in ${where} (${V3_TABLES.length} tables with the ${VECTOR_INDEX} index)${extension}` };
      }
      const kept = new Set(before.ids);
      return withTarget(plan, async (target, pool) => {
        const added = (await target.ids()).filter((id) => !kept.has(id));
        for (let i = 0; i < added.length; i += SCAN_PAGE) await target.deleteMemories(added.slice(i, i + SCAN_PAGE));
        // The users this run created (their tags cascade); one that owns a memory this run did not add stays. A record without userIds predates them: none removed.
        const created = planUsers(plan).map((user) => userIdFor(user.email)).filter((id) => before.userIds && !before.userIds.includes(id));
        const users = created.length
          ? ((await pool.query('DELETE FROM users u WHERE id = ANY($1::uuid[]) AND NOT EXISTS (SELECT 1 FROM memories m WHERE m.user_id = u.id)', [created])).rowCount ?? 0)
          : 0;
        const removedUsers = users ? ` and the ${users} user(s) it created` : '';
        return { summary: `Removed the ${added.length} memories this run added to ${where}${removedUsers}; its ${kept.size} earlier memories are kept` };
      });
    },
  };
}
