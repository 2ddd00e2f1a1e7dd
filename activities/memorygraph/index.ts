/**
 * Activities of the memorygraph runbook (workflows/memory-graph-migration.ts).
 * Each takes the validated plan (paths and credential-free endpoints) and
 * returns counts, ids (capped), paths and reports — never memories.
 *
 * Nothing lost: the source is only read, except by a rollback carrying
 * post-cutover writes back; what the target held before the run is recorded
 * (and backed up) and never removed or overwritten; catch-ups follow the live
 * source by fingerprint diff; after cutover nothing the service writes in the
 * target is overwritten.
 */
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { RollbackRequest, ValidationReport } from '../../workflows/messages';
import { describeEndpoint, type MemoryGraphEndpoint, type MemoryGraphPlan } from '../../workflows/memory-graph-plan';
import { currentWorkflow } from '../context';
import { workflowCopyChannel } from '../copy-channel';
import { copyPointsResumably, type CopyResult } from '../copy-engine';
import { assertLiveBackendFile, readLiveBackend, recordLiveBackend, restoreLiveBackend, untilQuiet, type ProtectedFiles } from '../cutover';
import { assertWritableFile, writeFileAtomically } from '../files';
import { FalkorStore } from '../stores/falkordb';
import { readExportFile, stagingOf, writeExportFile } from '../stores/memorygraph-files';
import { Neo4jGraphStore } from '../stores/memorygraph-neo4j';
import { MemorygraphSqliteStore } from '../stores/memorygraph-sqlite';
import { pointsOf, scan, withEndsInTarget, type Entity, type GraphCounts, type GraphStore } from './graph-store';
import { openBackup, removeCreatedStoreIfEmpty, storeFileGone, undoRunWrites, type IdSets, type Undone } from './rollback';
import { openSource, openTarget, probeTarget, runDir, withStore } from './stores';
import { ENTITIES, PAGE, beat, bringInLine, carryBack, diffEntity, diffStreamed, printsOf, printsToRecord, type CarryBack, type CutoverPrints, type SyncCounts } from './sync';

/** Ids named in results and errors are capped: history stays small. */
const MAX_IDS = 20;

export interface MemoryGraphPreflight {
  source: GraphCounts & { layout: string };
  target: { exists: boolean; memories: number; relationships: number };
}

interface TargetBefore {
  /** Whether this run brought the target into being (a new SQLite file, graph, or export staging store). */
  created: boolean;
  memories: string[];
  relationships: string[];
}

interface CutoverRecord {
  prints: CutoverPrints;
  /** The source's fingerprints when rollback switched the service back to it. */
  sourceAtSwitch?: CutoverPrints;
  rollback?: RollbackProgress;
}

/** A rollback's progress, kept with the cutover record so a retried rollback resumes and reports the whole of it. */
interface RollbackProgress {
  /** The ids in `prints` when rollback began, before carry-backs add the service's: less what the target held before, this run's writes. */
  atStart: Record<Entity, string[]>;
  carried: number;
  keptNewer: number;
  deletedInTarget: number;
  /** Set once the target is undone: a retry only finishes removing a store this run created. */
  summary?: string;
}

function fail(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

const ids = (list: string[]) => `${list.slice(0, MAX_IDS).join(', ')}${list.length > MAX_IDS ? ` and ${list.length - MAX_IDS} more` : ''}`;

/** Files that no record, backup or cutover of this run may ever write. */
function protectedFiles(plan: MemoryGraphPlan): ProtectedFiles {
  const files: ProtectedFiles = [];
  if (plan.source.kind === 'sqlite' || plan.source.kind === 'export-file') files.push({ file: plan.source.path, what: 'the source' });
  if (plan.target.kind === 'sqlite') files.push({ file: plan.target.path, what: 'the target database' });
  return files;
}

function recordsOf(plan: MemoryGraphPlan, workflowId = currentWorkflow().workflowId) {
  const dir = runDir(plan.workDir, workflowId);
  return {
    dir,
    before: path.join(dir, 'target-before.json'),
    backup: path.join(dir, 'target-backup.jsonl'),
    cutover: path.join(dir, 'target-at-cutover.json'),
  };
}

async function readRecord<T>(file: string): Promise<T | null> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw ApplicationFailure.nonRetryable(`Cannot read this run's record ${file}: ${err.code ?? err.message}. Nothing was changed; restore the file and retry.`, 'RunRecordUnreadable');
  });
  return text === null ? null : (JSON.parse(text) as T);
}

async function writeRecord(plan: MemoryGraphPlan, file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomically(file, JSON.stringify(value), 'workDir', protectedFiles(plan));
}

async function keptIds(plan: MemoryGraphPlan): Promise<Record<Entity, Set<string>>> {
  const before = await readRecord<TargetBefore>(recordsOf(plan).before);
  return { memories: new Set(before?.memories ?? []), relationships: new Set(before?.relationships ?? []) };
}

/**
 * Runs `use` on the source as it is at one instant when it can: a SQLite
 * source is copied (VACUUM INTO, one short read transaction, in a worker
 * thread so heartbeats go on) to a snapshot in this run's folder, and read there. Holding a read transaction on the live
 * file instead would make memorygraph's writes wait for the whole comparison
 * (its SQLite store runs in rollback-journal mode, where readers block writers).
 */
async function atOneInstant<T>(plan: MemoryGraphPlan, source: GraphStore, use: (view: GraphStore) => Promise<T>): Promise<T> {
  if (!(source instanceof MemorygraphSqliteStore)) return use(source);
  const { dir } = recordsOf(plan);
  const file = path.join(dir, `source-snapshot-${Date.now()}.db`);
  await fs.mkdir(dir, { recursive: true });
  await assertWritableFile(file, 'workDir', protectedFiles(plan));
  try {
    await source.snapshotTo(file);
    return await withStore(Promise.resolve(MemorygraphSqliteStore.openReadOnly(file)), use);
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** `dir`, or its nearest ancestor that exists (workDir is created on first write). */
async function nearestExisting(dir: string): Promise<string> {
  let current = path.resolve(dir);
  while (!(await fs.stat(current).then(() => true, () => false))) current = path.dirname(current);
  return current;
}

/** What the memory service's deployment sets to use `target` (memorygraph reads its backend from these variables). */
function memorygraphEnv(target: MemoryGraphEndpoint): Record<string, string> {
  switch (target.kind) {
    case 'sqlite':
      return { MEMORY_BACKEND: 'sqlite', MEMORY_SQLITE_PATH: path.resolve(target.path) };
    case 'neo4j':
      return { MEMORY_BACKEND: 'neo4j', MEMORY_NEO4J_URI: target.uri, ...(target.database ? { MEMORY_NEO4J_DATABASE: target.database } : {}) };
    case 'falkordb': {
      const url = new URL(target.url);
      return { MEMORY_BACKEND: 'falkordb', FALKORDB_HOST: url.hostname, FALKORDB_PORT: url.port || '6379' };
    }
    case 'export-file':
      return {};
  }
}

function endpointLocation(endpoint: MemoryGraphEndpoint): string {
  return endpoint.kind === 'neo4j' ? endpoint.uri : endpoint.kind === 'falkordb' ? endpoint.url : path.resolve(endpoint.path);
}

function layoutOf(store: GraphStore, endpoint: MemoryGraphEndpoint): string {
  if (store instanceof MemorygraphSqliteStore) return `${store.layout.layout}${store.layout.fts ? ' with FTS5 nodes_fts' : ''}`;
  return endpoint.kind === 'export-file' ? endpoint.format : `${endpoint.kind} graph`;
}

async function reportOf(source: GraphStore, target: GraphStore, keep: Record<Entity, Set<string>>): Promise<ValidationReport> {
  const sourceCounts = await source.counts();
  const checks: ValidationReport['checks'] = [];
  const errors: string[] = [];
  let [sourceCount, targetCount] = [0, 0];
  for (const entity of ENTITIES) {
    const diff = await diffStreamed(source, target, entity, keep[entity]);
    const ok = diff.missing.length + diff.different.length + diff.extra.length === 0;
    sourceCount += diff.sourceCount;
    targetCount += diff.targetCount - keep[entity].size;
    checks.push({
      name: `every ${entity.slice(0, -1)}`,
      ok,
      detail: `${diff.sourceCount} in the source compared one by one: ${diff.missing.length} missing, ${diff.different.length} different, ${diff.extra.length} extra in the target`,
    });
    if (diff.missing.length) errors.push(`${entity} missing from the target: ${ids(diff.missing)}`);
    if (diff.different.length) errors.push(`${entity} different in the target: ${ids(diff.different)}`);
    if (diff.extra.length) errors.push(`${entity} in the target but not the source: ${ids(diff.extra)}`);
  }
  const targetCounts = await target.counts();
  const types = [...new Set([...Object.keys(sourceCounts.relationshipsByType), ...Object.keys(targetCounts.relationshipsByType)])].sort();
  const typeMismatches = types.filter((t) => (sourceCounts.relationshipsByType[t] ?? 0) > (targetCounts.relationshipsByType[t] ?? 0) || (keep.relationships.size === 0 && sourceCounts.relationshipsByType[t] !== targetCounts.relationshipsByType[t]));
  checks.push({
    name: 'relationships per type',
    ok: typeMismatches.length === 0,
    detail: typeMismatches.length ? `${typeMismatches.length} of ${types.length} types differ: ${typeMismatches.slice(0, 10).join(', ')}` : `${types.length} types match`,
  });
  return {
    ok: checks.every((c) => c.ok),
    sourceCount,
    targetCount,
    perUser: [],
    sampled: sourceCount,
    minCosine: null,
    checks,
    errors: errors.slice(0, MAX_IDS),
  };
}

const idSets = (before: TargetBefore): IdSets => ({ memories: new Set(before.memories), relationships: new Set(before.relationships) });

/** rollback.ts's undo with the run's backup, stopping (non-retryable) on any item that does not read back equal to it. */
async function undoInTarget(plan: MemoryGraphPlan, target: GraphStore, before: TargetBefore, scope: { only?: IdSets; carried?: CutoverPrints }): Promise<Undone> {
  const { backup: file } = recordsOf(plan);
  const held = idSets(before);
  const backup = await openBackup(file, held);
  try {
    const undone = await undoRunWrites(target, { before: held, backup, ...scope });
    if (undone.mismatched.length) {
      fail(`${describeEndpoint(plan.target)} does not read back equal to its backup ${file} after the restore: ${ids(undone.mismatched)}. This run's writes are removed; compare those items with the backup, then send rollback again.`, 'RestoreMismatch');
    }
    return undone;
  } finally {
    await backup?.close();
  }
}

function undoneNotes(before: TargetBefore, undone: Undone, backup: string): string[] {
  const notes: string[] = [];
  if (undone.pinned.length) notes.push(`${undone.pinned.length} of this run's memories kept because a relationship not removed touches them: ${ids(undone.pinned)}`);
  if (undone.unsettled.length) notes.push(`${undone.unsettled.length} items changed in the target after their last carry-back left as they are (the source kept the service's newer write): ${ids(undone.unsettled)}`);
  if (before.memories.length + before.relationships.length) {
    notes.push(`${undone.restored.memories} of the ${before.memories.length} memories and ${undone.restored.relationships} of the ${before.relationships.length} relationships it held before the run read back equal to its backup (${backup})`);
  }
  return notes;
}

/** Before any cutover everything the target gained is this run's: removed (a store it created, once empty, whole), and what it held put back as backed up. */
async function removeRunWrites(plan: MemoryGraphPlan, before: TargetBefore): Promise<string> {
  const name = describeEndpoint(plan.target);
  if (await storeFileGone(plan.target)) return before.created ? `Removed ${name}, which this run created` : `${name} no longer exists; nothing to remove`;
  const undone = await withStore(openTarget(plan.target), (target) => undoInTarget(plan, target, before, {}));
  if (before.created && undone.left === 0 && (await removeCreatedStoreIfEmpty(plan.target))) return `Removed ${name}, which this run created`;
  const notes = [`Removed the ${undone.removed.memories} memories and ${undone.removed.relationships} relationships this run added to ${name}`, ...undoneNotes(before, undone, recordsOf(plan).backup)];
  return notes.join('; ');
}

export function memoryGraphActivities({ client }: { client: Client }) {
  return {
    /** Both ends reachable and recognised, the source whole (no dangling relationships), the target empty or, with existingTarget 'merge', holding no source id with other contents. Writes nothing. */
    async preflightMemoryGraph(plan: MemoryGraphPlan): Promise<MemoryGraphPreflight> {
      const records = recordsOf(plan);
      for (const file of Object.values(records).slice(1)) await assertWritableFile(file, 'workDir', protectedFiles(plan));
      if (plan.cutover) await assertLiveBackendFile(plan.cutover.file, protectedFiles(plan));
      if (plan.target.kind === 'export-file') {
        for (const file of [plan.target.path, stagingOf(plan.target.path)]) await assertWritableFile(file, 'target.path', protectedFiles(plan).filter((f) => f.what === 'the source'));
      } else if (plan.target.kind === 'sqlite') {
        await assertWritableFile(plan.target.path, 'target.path', protectedFiles(plan).filter((f) => f.what === 'the source'));
      }
      return withStore(openSource(plan.source, true), async (source) => {
        const problems = source instanceof MemorygraphSqliteStore ? source.integrityProblems() : [];
        if (problems.length) fail(`The source fails SQLite's integrity check: ${problems.slice(0, 3).join('; ')}. Nothing was written.`, 'SourceCorrupt');
        if (plan.source.kind === 'sqlite') {
          // Catch-ups and validation read a snapshot copy of the source in workDir.
          const needed = 2 * (await fs.stat(plan.source.path)).size;
          const existing = await nearestExisting(plan.workDir);
          const free = await fs.statfs(existing).then((f) => f.bavail * f.bsize);
          if (free < needed) fail(`Only ${free} bytes free under workDir (${existing}); snapshots of the source need at least ${needed}. Nothing was written.`, 'DiskSpace');
        }
        const counts = await source.counts();
        const dangling = await source.dangling(MAX_IDS + 1);
        if (dangling.length) {
          fail(`The source holds relationships whose memory at one end is missing (or that have no id): ${ids(dangling)}. memorygraph's graph backends cannot hold them; fix or remove them in the source. Nothing was written.`, 'DanglingRelationships');
        }
        const target = await probeTarget(plan.target);
        if (!target) return { source: { ...counts, layout: layoutOf(source, plan.source) }, target: { exists: false, memories: 0, relationships: 0 } };
        try {
          const held = await target.counts();
          if (held.memories + held.relationships > 0 && plan.existingTarget === 'refuse') {
            fail(`Target ${describeEndpoint(plan.target)} already holds ${held.memories} memories and ${held.relationships} relationships; memshift writes only into an empty target unless the plan says existingTarget: 'merge' (what it holds is backed up and kept). Nothing was written.`, 'TargetNotEmpty');
          }
          // 'resume' is merge's older name.
          if (plan.existingTarget !== 'refuse') {
            const [s, t] = [await printsOf(source), await printsOf(target)];
            for (const entity of ENTITIES) {
              const { different } = await diffEntity(source, target, entity, { source: s[entity], target: t[entity] });
              if (different.length) {
                fail(`Target ${describeEndpoint(plan.target)} holds ${different.length} ${entity} with the source's ids but different contents (${ids(different)}); memshift will not overwrite data it did not write. Nothing was written.`, 'TargetConflicts');
              }
            }
          }
          return { source: { ...counts, layout: layoutOf(source, plan.source) }, target: { exists: true, memories: held.memories, relationships: held.relationships } };
        } finally {
          await target.close();
        }
      });
    },

    /** Reads everything the copy would read and times it; writes nothing. */
    async dryRunMemoryGraph(plan: MemoryGraphPlan): Promise<{ memories: number; relationships: number; readSeconds: number; estimatedSeconds: number }> {
      return withStore(openSource(plan.source, true), async (source) => {
        const started = Date.now();
        const read = { memories: 0, relationships: 0 };
        for (const entity of ENTITIES) for await (const page of scan(source, entity, PAGE, beat)) read[entity] += page.length;
        const readSeconds = (Date.now() - started) / 1000;
        // Writing costs about as much as reading again on the other side, twice (write, batch check).
        return { memories: read.memories, relationships: read.relationships, readSeconds: Number(readSeconds.toFixed(2)), estimatedSeconds: Math.ceil(3 * readSeconds) };
      });
    },

    /**
     * Records which ids the target held before this run (no removal ever
     * touches them) and, when it held any, backs it up as a memshift JSONL
     * export with manifest. Idempotent: a retry finds the record.
     */
    async backupMemoryGraphTarget(plan: MemoryGraphPlan): Promise<{ backup: string | null; memories: number; relationships: number }> {
      const records = recordsOf(plan);
      const recorded = await readRecord<TargetBefore>(records.before);
      if (recorded) {
        const held = recorded.memories.length + recorded.relationships.length;
        return { backup: held ? records.backup : null, memories: recorded.memories.length, relationships: recorded.relationships.length };
      }
      const target = await probeTarget(plan.target);
      if (!target) {
        // An empty file someone made is not this run's to remove.
        const created = plan.target.kind !== 'sqlite' || !(await fs.stat(plan.target.path).then(() => true, () => false));
        await writeRecord(plan, records.before, { created, memories: [], relationships: [] } satisfies TargetBefore);
        return { backup: null, memories: 0, relationships: 0 };
      }
      try {
        const prints = await printsOf(target);
        const before: TargetBefore = { created: false, memories: [...prints.memories.keys()], relationships: [...prints.relationships.keys()] };
        if (before.memories.length + before.relationships.length > 0) {
          await fs.mkdir(records.dir, { recursive: true });
          await assertWritableFile(records.backup, 'workDir', protectedFiles(plan));
          await writeExportFile(target, records.backup, 'memshift-jsonl', describeEndpoint(plan.target), beat);
          // Read back: the backup restores exactly what was there.
          const check = await readExportFile(records.backup, 'memshift-jsonl');
          const counts = await check.counts();
          if (counts.memories !== before.memories.length || counts.relationships !== before.relationships.length) {
            fail(`Backup ${records.backup} did not verify: it holds ${counts.memories}/${counts.relationships}, the target ${before.memories.length}/${before.relationships.length}.`, 'BackupUnverified');
          }
        } else if (plan.target.kind === 'falkordb') {
          before.created = !(await (target as FalkorStore).exists());
        }
        await writeRecord(plan, records.before, before);
        return { backup: before.memories.length + before.relationships.length ? records.backup : null, memories: before.memories.length, relationships: before.relationships.length };
      } finally {
        await target.close();
      }
    },

    /** Creates memorygraph's schema where the target lacks it (SQLite tables and FTS, the graph's Memory.id constraint). */
    async prepareMemoryGraphTarget(plan: MemoryGraphPlan): Promise<{ target: string }> {
      return withStore(openTarget(plan.target, true), async (target) => {
        if (target instanceof FalkorStore || target instanceof Neo4jGraphStore) await target.prepareSchema();
        return { target: target.name };
      });
    },

    /** One entity through the resumable copy engine: memories first, then relationships (their ends must exist). */
    async copyMemoryGraph(plan: MemoryGraphPlan, entity: Entity): Promise<CopyResult> {
      return withStore(openSource(plan.source), (source) =>
        withStore(openTarget(plan.target), (target) => {
          const from = pointsOf(source, entity);
          const to = pointsOf(target, entity);
          return copyPointsResumably({
            // Read already shaped as the target keeps points, so a retry recognises pages it wrote.
            source: { ...from, readPage: async (cursor, limit) => {
              const page = await from.readPage(cursor, limit);
              return { ...page, points: page.points.map((p) => target.shape(entity, p)) };
            } },
            target: to,
            channel: workflowCopyChannel(client),
            transform: entity === 'relationships' ? (relationships) => withEndsInTarget(source, target, relationships) : undefined,
          });
        }),
      );
    },

    /**
     * Compares every memory and every relationship, both stores streamed
     * side by side (ids only in the report), the source at one instant;
     * when anything differs, catches up and compares again.
     */
    async validateMemoryGraph(plan: MemoryGraphPlan): Promise<{ report: ValidationReport; caughtUp: SyncCounts }> {
      const keep = await keptIds(plan);
      return withStore(openSource(plan.source), (source) =>
        withStore(openTarget(plan.target), (target) =>
          atOneInstant(plan, source, async (view) => {
            // A comparison that finds nothing is what a catch-up would find: one pass over both stores, not two.
            let report = await reportOf(view, target, keep);
            let caughtUp: SyncCounts = { written: 0, removed: 0, keptNewer: 0 };
            if (!report.ok) {
              caughtUp = await bringInLine(view, target, keep);
              report = await reportOf(view, target, keep);
            }
            report.checks.push({ name: 'live writes', ok: true, detail: `a catch-up just before the comparison wrote ${caughtUp.written} and removed ${caughtUp.removed}; later writes are copied while waiting and at cutover` });
            return { report, caughtUp };
          }),
        ),
      );
    },

    /** Copies what the service wrote to the source since, and removes what it deleted (only what this run wrote). */
    async catchUpMemoryGraph(plan: MemoryGraphPlan): Promise<SyncCounts> {
      const keep = await keptIds(plan);
      return withStore(openSource(plan.source), (source) => withStore(openTarget(plan.target), (target) => atOneInstant(plan, source, (view) => bringInLine(view, target, keep))));
    },

    /**
     * The switch, converged: catch up, record the target as this run leaves it,
     * point the live-backend file at it (an export file: write the file), then
     * catch up what the service wrote to the source in between — never over
     * anything it has already written in the target.
     */
    async cutOverMemoryGraph(plan: MemoryGraphPlan): Promise<{ memories: number; relationships: number; caughtUp: number; file: string | null }> {
      const { workflowId } = currentWorkflow();
      const records = recordsOf(plan, workflowId);
      const keep = await keptIds(plan);
      return withStore(openSource(plan.source), (source) =>
        withStore(openTarget(plan.target), async (target) => {
          let record = await readRecord<CutoverRecord>(records.cutover);
          let caughtUp = 0;
          const { target: endpoint } = plan;
          if (endpoint.kind === 'export-file') {
            const synced = await atOneInstant(plan, source, (view) => bringInLine(view, target, keep));
            const sealed = await writeExportFile(target, endpoint.path, endpoint.format, describeEndpoint(plan.source), beat);
            return { memories: sealed.memories, relationships: sealed.relationships, caughtUp: synced.written + synced.removed, file: sealed.file };
          }
          const switched = (await readLiveBackend(plan.cutover!.file))?.workflowId === workflowId;
          if (!switched || !record) {
            const synced = await atOneInstant(plan, source, (view) => bringInLine(view, target, keep));
            caughtUp += synced.written + synced.removed;
            record = { prints: printsToRecord(await printsOf(target)) };
            await writeRecord(plan, records.cutover, record);
            await recordLiveBackend(
              plan.cutover!.file,
              { kind: plan.target.kind, url: endpointLocation(plan.target), name: describeEndpoint(plan.target), workflowId, memorygraphEnv: memorygraphEnv(plan.target) },
              protectedFiles(plan),
            );
          }
          const guard = record.prints;
          caughtUp += await untilQuiet(async () => {
            const gap = await atOneInstant(plan, source, (view) => bringInLine(view, target, keep, guard));
            await writeRecord(plan, records.cutover, record);
            return gap.written + gap.removed;
          });
          return { memories: Object.keys(guard.memories).length, relationships: Object.keys(guard.relationships).length, caughtUp, file: null };
        }),
      );
    },

    /** The live-backend file names the target and the target answers; an export file reads back equal to what was copied. */
    async verifyMemoryGraphCutover(plan: MemoryGraphPlan): Promise<{ memories: number; relationships: number }> {
      const { target: endpoint } = plan;
      if (endpoint.kind === 'export-file') {
        const staging = stagingOf(endpoint.path);
        const written = await readExportFile(endpoint.path, endpoint.format);
        const counts = await withStore(Promise.resolve(MemorygraphSqliteStore.openReadOnly(staging)), async (copied) => {
          const report = await reportOf(copied, written, { memories: new Set(), relationships: new Set() });
          if (!report.ok) fail(`${endpoint.path} does not read back as copied: ${report.errors.join('; ')}`, 'VerifyFailed');
          return copied.counts();
        });
        for (const file of [staging, `${staging}-wal`, `${staging}-shm`]) await fs.rm(file, { force: true });
        return { memories: counts.memories, relationships: counts.relationships };
      }
      const live = await readLiveBackend(plan.cutover!.file);
      if (live?.name !== describeEndpoint(plan.target)) fail(`${plan.cutover!.file} does not name ${describeEndpoint(plan.target)} as the live backend`, 'VerifyFailed');
      return withStore(openTarget(plan.target), async (target) => target.counts());
    },

    /**
     * Undo a cutover keeping every write: carry the target's post-cutover
     * writes into the source while the target is live, switch the service back,
     * carry what landed in between (never over what the service rewrote in the
     * source since); then remove this run's writes from the target and put
     * back what it held before as its backup holds it. Items the service
     * created in the target after cutover stay there (they are not this run's)
     * unless the request says `restore-backup`. Resumable at every step.
     */
    async rollbackMemoryGraph(plan: MemoryGraphPlan, request: RollbackRequest | null): Promise<{ summary: string }> {
      const { workflowId } = currentWorkflow();
      const records = recordsOf(plan, workflowId);
      if (plan.target.kind === 'export-file') return { summary: `${plan.target.path} is an export file: nothing went live, nothing to roll back; the file is kept` };
      const before = await readRecord<TargetBefore>(records.before);
      const record = await readRecord<CutoverRecord>(records.cutover);
      if (!record) {
        await restoreLiveBackend(plan.cutover!.file, workflowId, protectedFiles(plan));
        const removed = before ? await removeRunWrites(plan, before) : `nothing was written to ${describeEndpoint(plan.target)}`;
        return { summary: `${plan.cutover!.file} restored; the target was never live, nothing to carry back; ${removed}` };
      }
      if (record.rollback?.summary) {
        if (before?.created) await removeCreatedStoreIfEmpty(plan.target);
        return { summary: record.rollback.summary };
      }
      if (plan.source.kind === 'export-file') {
        fail(`The source is an export file, which memshift never rewrites: post-cutover writes cannot be carried back into it. The target stays live; export it (memshift-jsonl) before switching by hand.`, 'RollbackImpossible');
      }
      if (!before) fail(`This run's record ${records.before} is missing: rollback cannot tell what the target held before the run. Nothing was changed; the target stays live.`, 'RunRecordMissing');
      const progress = (record.rollback ??= {
        atStart: { memories: Object.keys(record.prints.memories), relationships: Object.keys(record.prints.relationships) },
        carried: 0,
        keptNewer: 0,
        deletedInTarget: 0,
      });
      await writeRecord(plan, records.cutover, record);
      const source = plan.source.kind === 'sqlite' ? MemorygraphSqliteStore.openWritable(plan.source.path) : await openSource(plan.source);
      const undone = await withStore(Promise.resolve(source), (source) =>
        withStore(openTarget(plan.target), async (target) => {
          const add = (pass: CarryBack & { unequal: string[] }, live: boolean) => {
            if (pass.unequal.length) {
              const state = live ? 'The target stays live' : 'The service is back on the source';
              fail(`Rollback stopped: ${ids(pass.unequal)} did not read back from the source as carried. ${state}; nothing was removed from the target. Fix those items in the source and send rollback again.`, 'RoundTripMismatch');
            }
            progress.carried += pass.carried;
            progress.keptNewer += pass.keptNewer;
            progress.deletedInTarget = pass.deletedInTarget;
          };
          const live = (await readLiveBackend(plan.cutover!.file))?.workflowId === workflowId;
          if (live || !record.sourceAtSwitch) {
            add(await carryBack(target, source, record.prints), live);
            record.sourceAtSwitch = printsToRecord(await printsOf(source));
            await writeRecord(plan, records.cutover, record);
            await restoreLiveBackend(plan.cutover!.file, workflowId, protectedFiles(plan));
          }
          const atSwitch = { memories: new Map(Object.entries(record.sourceAtSwitch!.memories)), relationships: new Map(Object.entries(record.sourceAtSwitch!.relationships)) };
          await untilQuiet(async () => {
            const pass = await carryBack(target, source, record.prints, atSwitch);
            add(pass, false);
            await writeRecord(plan, records.cutover, record);
            return pass.carried;
          });
          const held = idSets(before);
          const ran = { memories: new Set(progress.atStart.memories.filter((id) => !held.memories.has(id))), relationships: new Set(progress.atStart.relationships.filter((id) => !held.relationships.has(id))) };
          const everything = request?.mode === 'restore-backup';
          return { ran, ...(await undoInTarget(plan, target, before, { only: everything ? undefined : ran, carried: record.prints })) };
        }),
      );
      const target = describeEndpoint(plan.target);
      const notes = [`${plan.cutover!.file} restored`, `${progress.carried} post-cutover writes carried back into ${describeEndpoint(plan.source)} and read back equal`];
      if (progress.keptNewer) notes.push(`${progress.keptNewer} items the service rewrote in the source after switching back kept as it wrote them`);
      if (progress.deletedInTarget) notes.push(`${progress.deletedInTarget} items deleted in the target after cutover are kept in the source`);
      notes.push(`this run's ${undone.ran.memories.size} memories and ${undone.ran.relationships.size} relationships are gone from ${target}${undone.pinned.length + undone.unsettled.length ? ', but for the kept items named next' : ''}`);
      notes.push(...undoneNotes(before, undone, records.backup));
      if (request?.mode === 'restore-backup') notes.push(`restore-backup: what the service created in ${target} after cutover is gone from it too (it is in the source, read back equal)`);
      else if (undone.spared.memories + undone.spared.relationships) {
        notes.push(`the ${undone.spared.memories} memories and ${undone.spared.relationships} relationships the service created in ${target} after cutover are kept there (not this run's to remove; also carried into the source)`);
      }
      const removeStore = before.created && undone.left === 0;
      if (removeStore) notes.push(`${target}, which this run created and which now holds nothing, removed`);
      progress.summary = `${notes.join('; ')}.`;
      await writeRecord(plan, records.cutover, record);
      if (removeStore) await removeCreatedStoreIfEmpty(plan.target);
      return { summary: progress.summary };
    },

    /** After a rejection or timeout: removes only what this run wrote (a store it created, once empty, whole) and puts back what the target held before as backed up. */
    async removeMemoryGraphRunWrites(plan: MemoryGraphPlan): Promise<{ summary: string }> {
      const before = await readRecord<TargetBefore>(recordsOf(plan).before);
      if (!before) return { summary: `nothing was written to ${describeEndpoint(plan.target)}` };
      return { summary: await removeRunWrites(plan, before) };
    },
  };
}
