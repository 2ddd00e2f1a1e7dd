/**
 * Undoing a memoryGraphMigration in its target, after a rejection or a
 * rollback: this run's writes are removed (relationships before memories),
 * what the target held before the run is put back as its backup holds it and
 * read back equal, and a store the run created, once it holds nothing else, is
 * removed. Every step is idempotent: a retry finds less to do, never more.
 */
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import type { MemoryGraphEndpoint } from '../../workflows/memory-graph-plan';
import { FalkorStore } from '../stores/falkordb';
import { heartbeatWhile } from '../context';
import { readExportFile, stagingOf } from '../stores/memorygraph-files';
import { MemorygraphSqliteStore } from '../stores/memorygraph-sqlite';
import type { Entity, GraphStore } from './graph-store';
import { openTarget, withStore } from './stores';
import { ENTITIES, copyIds, diffEntity, printsOf, removeIds, type CutoverPrints } from './sync';

export type IdSets = Record<Entity, Set<string>>;

export interface Undone {
  /** Items removed by this call (a retry counts only what was left). */
  removed: Record<Entity, number>;
  /** Items the target held that were not this run's to remove (the service created them after cutover): left in place. */
  spared: Record<Entity, number>;
  /** Memories this undo was to remove that a relationship it did not remove still touches: left, so no edge dangles. */
  pinned: string[];
  /** Items changed in the target after their last carry-back into the source: neither removed nor restored, so nothing is lost. */
  unsettled: string[];
  /** Items the target held before the run, now as its backup holds them. */
  restored: Record<Entity, number>;
  /** Items it held before that do not read back equal to the backup after the restore (none, unless something else writes the target). */
  mismatched: string[];
  /** Items left in the target. */
  left: number;
}

/**
 * Removes from `target` every item it did not hold before the run (only the
 * ids in `only`, when given: this run's writes), then writes back, from
 * `backup`, each item it held before that is now missing or different, and
 * reads them back against the backup.
 *
 * `carried` (after cutover): each item's fingerprint as the carry-back last
 * copied it into the source, or as this run left it. An item whose
 * fingerprint differs has a version the source lacks: it is left as it is.
 */
export async function undoRunWrites(target: GraphStore, scope: { before: IdSets; backup: GraphStore | null; only?: IdSets; carried?: CutoverPrints }): Promise<Undone> {
  const { before, backup, only, carried } = scope;
  const now = await printsOf(target);
  const settled = (entity: Entity, id: string) => !carried || !now[entity].has(id) || now[entity].get(id) === carried[entity][id];
  const undone: Undone = { removed: { memories: 0, relationships: 0 }, spared: { memories: 0, relationships: 0 }, pinned: [], unsettled: [], restored: { memories: 0, relationships: 0 }, mismatched: [], left: 0 };
  const removing: Record<Entity, string[]> = { memories: [], relationships: [] };
  for (const entity of ENTITIES) {
    for (const id of now[entity].keys()) {
      if (before[entity].has(id)) continue;
      if (only && !only[entity].has(id)) undone.spared[entity]++;
      else if (settled(entity, id)) removing[entity].push(id);
      else undone.unsettled.push(id);
    }
  }
  for (const entity of [...ENTITIES].reverse()) await removeIds(target, entity, removing[entity]);

  const saved = backup && (await printsOf(backup));
  if (backup && saved) {
    for (const entity of ENTITIES) {
      const { missing, different } = await diffEntity(backup, target, entity, { source: saved[entity], target: now[entity] });
      const differing = [...missing, ...different];
      undone.unsettled.push(...differing.filter((id) => !settled(entity, id)));
      await copyIds(backup, target, entity, differing.filter((id) => settled(entity, id)));
    }
  }

  const after = await printsOf(target);
  if (backup && saved) {
    const unsettled = new Set(undone.unsettled);
    for (const entity of ENTITIES) {
      const { missing, different } = await diffEntity(backup, target, entity, { source: saved[entity], target: after[entity] });
      const differing = [...missing, ...different];
      undone.mismatched.push(...differing.filter((id) => !unsettled.has(id)));
      undone.restored[entity] = saved[entity].size - differing.length;
    }
  }
  undone.pinned = removing.memories.filter((id) => after.memories.has(id));
  for (const entity of ENTITIES) undone.removed[entity] = removing[entity].filter((id) => !after[entity].has(id)).length;
  undone.left = after.memories.size + after.relationships.size;
  return undone;
}

/** The verified backup of what the target held before the run (null when it held nothing). */
export async function openBackup(file: string, before: IdSets): Promise<GraphStore | null> {
  if (before.memories.size + before.relationships.size === 0) return null;
  try {
    return await heartbeatWhile(() => readExportFile(file, 'memshift-jsonl'));
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `The target's pre-run backup ${file} cannot be read (${(err as Error).message}); nothing was removed from the target or put back. Restore the file and its manifest, then send rollback again.`,
      'BackupUnusable',
    );
  }
}

/** The file a SQLite or export-file target lives in (an export file's staging store), or null for a graph server. */
function storeFile(endpoint: MemoryGraphEndpoint): string | null {
  return endpoint.kind === 'sqlite' ? endpoint.path : endpoint.kind === 'export-file' ? stagingOf(endpoint.path) : null;
}

/** Whether a file target is gone (a store this run created, removed by an earlier attempt): opening it would create it again. */
export async function storeFileGone(endpoint: MemoryGraphEndpoint): Promise<boolean> {
  const file = storeFile(endpoint);
  return file !== null && !(await fs.stat(file).then(() => true, () => false));
}

/** Removes a store this run created once it holds nothing (a SQLite file, a staging store, a FalkorDB graph). Returns whether it is gone. */
export async function removeCreatedStoreIfEmpty(endpoint: MemoryGraphEndpoint): Promise<boolean> {
  const empty = (store: GraphStore) => store.counts().then((c) => c.memories + c.relationships === 0);
  if (endpoint.kind === 'falkordb') {
    return withStore(openTarget(endpoint), async (store) => {
      if (!(await empty(store))) return false;
      await (store as FalkorStore).dropGraph();
      return true;
    });
  }
  const file = storeFile(endpoint);
  if (file === null) return false;
  if (await storeFileGone(endpoint)) return true;
  if (!(await withStore(Promise.resolve(MemorygraphSqliteStore.openReadOnly(file)), empty))) return false;
  for (const f of [file, `${file}-wal`, `${file}-shm`]) await fs.rm(f, { force: true });
  return true;
}
