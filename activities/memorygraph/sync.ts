/**
 * Bringing one memorygraph store in line with another, by id and fingerprint:
 * validation's exhaustive comparison, the catch-ups before and after cutover,
 * and rollback's carry-back all diff the two stores' fingerprints (ids and
 * digests only, never contents), confirm every digest mismatch field by field
 * (activities/compare.ts), and copy the differing points in batches —
 * memories before relationships, relationships removed before memories.
 */
import { Context } from '@temporalio/activity';
import { sameJson } from '../compare';
import type { MemoryPoint } from '../stores/contract';
import { compareEveryPoint } from '../validation';
import { fingerprintOf, fingerprints, idOf, inMergeOrder, withoutRow, type Entity, type GraphStore } from './graph-store';

export const PAGE = 1000;
export const ENTITIES: Entity[] = ['memories', 'relationships'];

/** Heartbeats between pages, so a long scan shows it is alive (no details: a scan restarts on retry). */
export const beat = () => {
  try {
    Context.current().heartbeat();
  } catch {
    // outside an activity (tests of the stores)
  }
};

export interface EntityDiff {
  /** In the source, not in the target. */
  missing: string[];
  /** In both, with different contents (confirmed field by field). */
  different: string[];
  /** In the target, not in the source (ids in `keep` are not counted). */
  extra: string[];
  sourceCount: number;
  targetCount: number;
}

export type Prints = Record<Entity, Map<string, string>>;

export async function printsOf(store: GraphStore): Promise<Prints> {
  return { memories: await fingerprints(store, 'memories', PAGE, beat), relationships: await fingerprints(store, 'relationships', PAGE, beat) };
}

/** Whether two points hold the same memory or relationship, as memorygraph sees it (row timestamps aside). */
export function samePoint(a: MemoryPoint | undefined, b: MemoryPoint | undefined): boolean {
  return !!a && !!b && sameJson(withoutRow(a).payload, withoutRow(b).payload);
}

export async function diffEntity(source: GraphStore, target: GraphStore, entity: Entity, prints: { source: Map<string, string>; target: Map<string, string> }, keep: Set<string> = new Set()): Promise<EntityDiff> {
  const missing: string[] = [];
  const candidates: string[] = [];
  for (const [id, print] of prints.source) {
    const held = prints.target.get(id);
    if (held === undefined) missing.push(id);
    else if (held !== print) candidates.push(id);
  }
  const different: string[] = [];
  for (let i = 0; i < candidates.length; i += PAGE) {
    const ids = candidates.slice(i, i + PAGE);
    const [a, b] = await Promise.all([byId(source, entity, ids), byId(target, entity, ids)]);
    different.push(...ids.filter((id) => !samePoint(a.get(id), b.get(id))));
    beat();
  }
  const extra = [...prints.target.keys()].filter((id) => !prints.source.has(id) && !keep.has(id));
  return { missing, different, extra, sourceCount: prints.source.size, targetCount: prints.target.size };
}

export async function byId(store: GraphStore, entity: Entity, ids: string[]): Promise<Map<string, MemoryPoint>> {
  return new Map((await store.retrieve(entity, ids)).map((p) => [p.id, p]));
}

/** Copies the points `ids` from `from` to `to` in batches, shaped as `to` keeps them; returns their new fingerprints. */
export async function copyIds(from: GraphStore, to: GraphStore, entity: Entity, ids: string[]): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  for (let i = 0; i < ids.length; i += PAGE) {
    const points = (await from.retrieve(entity, ids.slice(i, i + PAGE))).map((p) => to.shape(entity, p));
    await to.upsert(entity, points);
    for (const p of points) written.set(p.id, fingerprintOf(p));
    beat();
  }
  return written;
}

export async function removeIds(store: GraphStore, entity: Entity, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += PAGE) {
    await store.remove(entity, ids.slice(i, i + PAGE));
    beat();
  }
}

/** Fingerprints of the target as this run left it at cutover: what post-cutover catch-ups and rollback diff against. */
export type CutoverPrints = Record<Entity, Record<string, string>>;

export interface SyncCounts {
  written: number;
  removed: number;
  /** Ids left alone because the live service changed them on the receiving side (post-cutover only). */
  keptNewer: number;
}

/** What a streamed comparison of one entity found: ids of the items to write or remove, and the totals. */
export interface StreamedDiff {
  missing: string[];
  different: string[];
  extra: string[];
  /** Items in the target only that it held before this run (`keep`): neither extra nor removed. */
  kept: number;
  /** Target fingerprints of the differing items, for the cutover guard. */
  targetPrints: Map<string, string>;
  sourceCount: number;
  targetCount: number;
}

/**
 * Every item of one entity, both stores streamed in read order and merged by
 * activities/validation.ts' compareEveryPoint: one page per side in memory,
 * plus the ids of what differs. Its `writtenSince` hook is where each
 * difference is sorted into missing, different or extra; none is excused.
 */
export async function diffStreamed(from: GraphStore, to: GraphStore, entity: Entity, keep: Set<string>): Promise<StreamedDiff> {
  const diff: StreamedDiff = { missing: [], different: [], extra: [], kept: 0, targetPrints: new Map(), sourceCount: 0, targetCount: 0 };
  const result = await compareEveryPoint(inMergeOrder(from, entity, PAGE), inMergeOrder(to, entity, PAGE, beat), {
    vectorsCopied: false,
    writtenSince: (source, target) => {
      const id = idOf((source ?? target)!);
      if (target) diff.targetPrints.set(id, fingerprintOf(target));
      if (!target) diff.missing.push(id);
      else if (source) diff.different.push(id);
      else if (keep.has(id)) diff.kept++;
      else diff.extra.push(id);
      return true;
    },
  }, beat);
  diff.sourceCount = result.compared - diff.extra.length - diff.kept;
  diff.targetCount = result.compared - diff.missing.length;
  return diff;
}

/**
 * Brings `to` in line with `from`: copies what is missing or different, and
 * removes what `from` no longer has, except ids in `keep` (what `to` held
 * before this run). With `guard` (after cutover: the receiving side is live
 * and its fingerprints as this run last left them), an id the service has
 * changed or created there since is never overwritten or removed; `guard` is
 * updated with what is written, so the next round sees only newer writes.
 * Both sides are streamed (diffStreamed): memory holds the differing ids only.
 */
export async function bringInLine(from: GraphStore, to: GraphStore, keep: Record<Entity, Set<string>>, guard?: CutoverPrints): Promise<SyncCounts> {
  const counts: SyncCounts = { written: 0, removed: 0, keptNewer: 0 };
  const diffs = {} as Record<Entity, StreamedDiff>;
  for (const entity of ENTITIES) diffs[entity] = await diffStreamed(from, to, entity, keep[entity]);
  const untouched = (entity: Entity, id: string) => !guard || diffs[entity].targetPrints.get(id) === guard[entity][id];
  for (const entity of ENTITIES) {
    const wanted = [...diffs[entity].missing, ...diffs[entity].different];
    const writable = wanted.filter((id) => untouched(entity, id));
    counts.keptNewer += wanted.length - writable.length;
    const written = await copyIds(from, to, entity, writable);
    if (guard) for (const [id, print] of written) guard[entity][id] = print;
    counts.written += written.size;
  }
  for (const entity of [...ENTITIES].reverse()) {
    const removable = diffs[entity].extra.filter((id) => !guard || (id in guard[entity] && untouched(entity, id)));
    counts.keptNewer += diffs[entity].extra.length - removable.length;
    await removeIds(to, entity, removable);
    if (guard) for (const id of removable) delete guard[entity][id];
    counts.removed += removable.length;
  }
  return counts;
}

export interface CarryBack {
  carried: number;
  /** Ids the service rewrote in the source after switching back: kept as it wrote them. */
  keptNewer: number;
  /** Ids deleted in the target after cutover: kept in the source. */
  deletedInTarget: number;
}

/**
 * Rollback's carry-back: every point the target gained or changed since
 * cutover (its fingerprint differs from `record`) is written into the source
 * and read back equal. With `sourceAtSwitch` (after switching back), a source
 * id the service has rewritten since the switch is left as it wrote it.
 * `record` is updated, so a second pass sees only newer target writes.
 */
export async function carryBack(target: GraphStore, source: GraphStore, record: CutoverPrints, sourceAtSwitch?: Prints): Promise<CarryBack & { unequal: string[] }> {
  const result = { carried: 0, keptNewer: 0, deletedInTarget: 0, unequal: [] as string[] };
  const targetPrints = await printsOf(target);
  const sourcePrints = sourceAtSwitch ? await printsOf(source) : null;
  for (const entity of ENTITIES) {
    const changed = [...targetPrints[entity]].filter(([id, print]) => record[entity][id] !== print).map(([id]) => id);
    const writable = changed.filter((id) => !sourcePrints || sourcePrints[entity].get(id) === sourceAtSwitch![entity].get(id));
    result.keptNewer += changed.length - writable.length;
    await copyIds(target, source, entity, writable);
    for (let i = 0; i < writable.length; i += PAGE) {
      const ids = writable.slice(i, i + PAGE);
      const [wrote, reread] = await Promise.all([byId(target, entity, ids), byId(source, entity, ids)]);
      result.unequal.push(...ids.filter((id) => !samePoint(wrote.get(id), reread.get(id))));
    }
    for (const id of writable) record[entity][id] = targetPrints[entity].get(id)!;
    result.carried += writable.length;
    result.deletedInTarget += Object.keys(record[entity]).filter((id) => !targetPrints[entity].has(id)).length;
  }
  return result;
}

export function printsToRecord(prints: Prints): CutoverPrints {
  return { memories: Object.fromEntries(prints.memories), relationships: Object.fromEntries(prints.relationships) };
}
