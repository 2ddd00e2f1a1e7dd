/**
 * Activities of the mem0 Qdrant rebuild runbook (workflows/qdrant-collection-rebuild.ts).
 * Each takes the validated plan (URLs, names, paths) and returns counts,
 * names, paths and reports — never points. Points are read by scans that
 * fetch only the fields they need, and copied by the one copy engine.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { CheckResult, CopyRange, ExhaustiveComparison, IdRange, RollbackRequest, ValidationReport } from '../workflows/messages';
import type { QdrantRebuildPlan } from '../workflows/qdrant-collection-rebuild';
import { BM25_VECTOR_NAME, bm25SparseVector } from './bm25';
import { currentWorkflow, heartbeatWhile } from './context';
import { rangeCopyChannel, workflowCopyChannel } from './copy-channel';
import { differingFields, payloadFingerprint, sameJson } from './compare';
import { copyPointsResumably, copyRangeResumably, type CopyChannel, type CopyResult } from './copy-engine';
import { assertWritableFile, writeFileAtomically } from './files';
import type { MemoryPoint, SparseVector } from './stores/contract';
import { exportGraph, graphCounts, restoreGraph, type GraphFile } from './stores/neo4j';
import {
  QdrantCollection,
  createPayloadIndex,
  createSnapshot,
  deleteCollection,
  describeCollection,
  listAliases,
  listCollections,
  listSnapshots,
  recoverSnapshot,
  scanPage,
  serverVersion,
  snapshotLocation,
  updateAliases,
  type AliasAction,
  type CollectionDescription,
  type Distance,
  type ScannedPoint,
} from './stores/qdrant';
import { buildReport, compareEveryPoint, comparePerUser, compareSamples, errorsAbout, type PerUserCount } from './validation';

type Pair = QdrantRebuildPlan['collections'][number];

/** The dense vector a source holds, which its target gets unchanged. */
export interface DenseVectorConfig {
  /** null: Qdrant's unnamed vector, as mem0 uses. */
  name: string | null;
  size: number;
  distance: Distance;
}

export interface CatchUpCounts {
  added: number;
  changed: number;
  deleted: number;
}

export interface RebuildPreflight {
  points: number;
  users: number;
  vectors: DenseVectorConfig[];
  baselineFile: string;
  notes: string[];
}

const SCAN_PAGE = 1_000;
/** Points per page on each side of an exhaustive comparison. */
const COMPARE_PAGE = 1_000;
const USER_FIELD = 'user_id';
/** mem0 2.x embeds `text_lemmatized || data` for BM25; v1 points lack text_lemmatized. */
const LEMMATIZED_FIELD = 'text_lemmatized';
/** Qdrant stores float32 and re-normalises Cosine vectors on upsert: copies agree to float32 rounding. */
const VECTOR_TOLERANCE = 1e-6;
/** Rough on-disk cost of a point's payload and index entries, for the space estimate. */
const PAYLOAD_BYTES_ESTIMATE = 2_048;
const GRAPH_NODE_BYTES_ESTIMATE = 32_768;
const MAX_REPORTED_ERRORS = 20;

function fail(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

const describeCounts = (c: CatchUpCounts) => `${c.added} added, ${c.changed} changed, ${c.deleted} deleted`;
const safeId = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_');
const textFieldOf = (plan: QdrantRebuildPlan, pair: Pair) => pair.textField ?? plan.textField;
const wantsBm25 = (plan: QdrantRebuildPlan) => plan.schema.sparse.includes(BM25_VECTOR_NAME);
const rollbackCollectionOf = (pair: Pair) => `${pair.source}_rollback`;

export function baselineFileFor(plan: QdrantRebuildPlan, workflowId: string): string {
  return path.join(plan.workDir, `baseline-${safeId(workflowId)}.json`);
}

export function graphExportFileFor(plan: QdrantRebuildPlan, workflowId: string): string {
  return path.join(plan.workDir, `neo4j-graph-${safeId(workflowId)}.jsonl`);
}

/** The text mem0 2.x would embed for BM25, or null when the point has none. */
export function bm25TextOf(payload: Record<string, unknown>, textField: string): string | null {
  for (const value of [payload[LEMMATIZED_FIELD], payload[textField]]) {
    if (typeof value === 'string' && value.trim() !== '') return value;
  }
  return null;
}

/** The copy's transform: ids, dense vectors and payloads as read, plus the bm25 sparse vector. */
function withBm25(plan: QdrantRebuildPlan, pair: Pair) {
  const textField = textFieldOf(plan, pair);
  return async (points: MemoryPoint[]): Promise<MemoryPoint[]> =>
    points.map(({ sparse: _legacySparse, ...point }) => {
      const text = wantsBm25(plan) ? bm25TextOf(point.payload, textField) : null;
      return text === null ? point : { ...point, sparse: { [BM25_VECTOR_NAME]: bm25SparseVector(text) } };
    });
}

function sourceOf(plan: QdrantRebuildPlan, pair: Pair, dense: DenseVectorConfig): QdrantCollection {
  return new QdrantCollection(plan.qdrant.url, pair.source, { vectorName: dense.name ?? undefined });
}

function targetOf(plan: QdrantRebuildPlan, collection: string, dense: DenseVectorConfig): QdrantCollection {
  return new QdrantCollection(plan.qdrant.url, collection, {
    vectorName: dense.name ?? undefined,
    distance: dense.distance,
    sparse: plan.schema.sparse,
    sparseModifier: 'idf',
  });
}

function heartbeat(details?: unknown): void {
  Context.current().heartbeat(details);
}

/** Every point of a collection, a page at a time, heartbeating between pages. */
async function* scan(url: string, collection: string, select: { payload: string[] | true; vectors: string[] }): AsyncGenerator<ScannedPoint> {
  let cursor: string | null = null;
  do {
    const page = await scanPage(url, collection, cursor, SCAN_PAGE, select);
    heartbeat();
    yield* page.points;
    cursor = page.next;
  } while (cursor !== null);
}

async function countByUser(url: string, collection: string): Promise<Map<string | null, number>> {
  const counts = new Map<string | null, number>();
  for await (const point of scan(url, collection, { payload: [USER_FIELD], vectors: [] })) {
    const user = point.payload[USER_FIELD];
    const key = typeof user === 'string' ? user : null;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

// --- preflight ---------------------------------------------------------------

interface QdrantInventory {
  collections: Set<string>;
  aliases: Map<string, string>;
}

async function inventory(url: string): Promise<QdrantInventory> {
  const collections = new Set(await listCollections(url));
  const aliases = new Map((await listAliases(url)).map((binding) => [binding.alias, binding.collection]));
  return { collections, aliases };
}

function assertSourceExists(pair: Pair, url: string, { collections, aliases }: QdrantInventory): void {
  if (collections.has(pair.source)) return;
  const aliased = aliases.get(pair.source);
  if (aliased) fail(`Source '${pair.source}' is an alias of '${aliased}'; name the collection itself as the source.`, 'SourceIsAlias');
  const existing = [...collections].sort().join(', ') || 'none';
  fail(`Source collection '${pair.source}' does not exist at ${url} (collections there: ${existing}). Check collections[].source.`, 'SourceNotFound');
}

/** The source's one dense vector, checked against the plan's override. */
function denseVectorOf(pair: Pair, description: CollectionDescription, override: QdrantRebuildPlan['schema']['dense']): DenseVectorConfig {
  if (description.dense.length !== 1) {
    fail(`Source '${pair.source}' has ${description.dense.length} dense vectors; a mem0 collection has exactly one.`, 'UnsupportedVectorConfig');
  }
  const dense = description.dense[0];
  const mismatches = [
    override?.size !== undefined && override.size !== dense.size ? `size ${override.size} (source has ${dense.size})` : null,
    override?.distance !== undefined && override.distance !== dense.distance ? `distance ${override.distance} (source has ${dense.distance})` : null,
  ].filter((m): m is string => m !== null);
  if (mismatches.length) {
    fail(
      `Vector config mismatch on '${pair.source}': the plan's schema.dense asks for ${mismatches.join(' and ')}. ` +
        'A rebuild copies vectors without re-embedding, so the dense config must match the source; remove schema.dense or fix it.',
      'VectorConfigMismatch',
    );
  }
  return dense;
}

/** A target name must be free, or an empty collection already shaped as the plan wants. */
async function assertTargetUsable(plan: QdrantRebuildPlan, pair: Pair, dense: DenseVectorConfig, { collections, aliases }: QdrantInventory): Promise<string> {
  if (aliases.has(pair.target)) fail(`Target '${pair.target}' is an alias (of '${aliases.get(pair.target)}'); pick a new collection name.`, 'TargetIsAlias');
  if (!collections.has(pair.target)) return `'${pair.target}' will be created.`;
  const description = await describeCollection(plan.qdrant.url, pair.target);
  if (description.pointsCount > 0) {
    fail(
      `Target collection '${pair.target}' already holds ${description.pointsCount} points; nothing was written. Pick a new target name, or delete '${pair.target}' if it is a leftover.`,
      'TargetNotEmpty',
    );
  }
  const problem = schemaProblem(plan, dense, description);
  if (problem) fail(`Target collection '${pair.target}' exists (empty) with another schema: ${problem}. Delete it or pick a new name.`, 'TargetSchemaMismatch');
  return `'${pair.target}' exists, empty, with the right schema; it will be filled.`;
}

function schemaProblem(plan: QdrantRebuildPlan, dense: DenseVectorConfig, description: CollectionDescription): string | null {
  const existing = description.dense[0];
  if (description.dense.length !== 1 || existing.name !== dense.name || existing.size !== dense.size || existing.distance !== dense.distance) {
    return `dense ${JSON.stringify(description.dense)}, wanted ${JSON.stringify(dense)}`;
  }
  for (const name of plan.schema.sparse) {
    if (!description.sparse.some((s) => s.name === name && s.modifier === 'idf')) return `no '${name}' sparse vector with modifier idf`;
  }
  return null;
}

/** Says exactly what the cutover will do to the serving name; refuses names it cannot serve. */
function aliasPlanFor(pair: Pair, { collections, aliases }: QdrantInventory): string {
  if (collections.has(pair.alias)) {
    fail(
      `The serving name '${pair.alias}' is a collection, not an alias, so the cutover cannot point it at '${pair.target}' ` +
        '(Qdrant cannot rename collections, and an alias cannot share a collection\'s name). Nothing was written. ' +
        `Pick an alias name that is free (e.g. '${pair.source}_live'); the cutover creates it, and clients follow it once their collection name is set to it.`,
      'AliasIsCollection',
    );
  }
  const current = aliases.get(pair.alias);
  if (current !== undefined && current !== pair.source) {
    fail(
      `Alias '${pair.alias}' serves '${current}', not the source '${pair.source}'; moving it would stop serving '${current}'s data. Fix collections[].source or .alias.`,
      'AliasServesOtherCollection',
    );
  }
  if (current === pair.source) {
    return `Alias '${pair.alias}' → '${pair.source}' today; the cutover moves it to '${pair.target}' in one atomic alias request, rollback moves it back.`;
  }
  return (
    `Alias '${pair.alias}' does not exist yet; the cutover creates it → '${pair.target}'. Clients reading the bare collection name '${pair.source}' ` +
    `keep reading the legacy collection (it is not renamed, changed or deleted) until their collection name is set to '${pair.alias}'; ` +
    `rollback points '${pair.alias}' at '${pair.source}'.`
  );
}

async function freeBytes(dir: string): Promise<number> {
  const stats = await fs.statfs(dir);
  return stats.bavail * stats.bsize;
}

async function checkSpace(plan: QdrantRebuildPlan, neededQdrantBytes: number, graphNodes: number): Promise<string[]> {
  const notes: string[] = [];
  if (plan.qdrant.storagePath) {
    const free = await freeBytes(plan.qdrant.storagePath);
    if (free < neededQdrantBytes) {
      fail(`Only ${free} bytes free in ${plan.qdrant.storagePath}; snapshots plus the new collections need about ${neededQdrantBytes}.`, 'DiskSpace');
    }
    notes.push(`Qdrant storage ${plan.qdrant.storagePath}: ${free} bytes free, about ${neededQdrantBytes} needed.`);
  } else {
    notes.push(`Qdrant disk not checked (set qdrant.storagePath to check it): snapshots plus the new collections need about ${neededQdrantBytes} bytes.`);
  }
  const neededExportBytes = graphNodes * GRAPH_NODE_BYTES_ESTIMATE;
  const freeLocal = await freeBytes(plan.workDir);
  if (freeLocal < neededExportBytes) fail(`Only ${freeLocal} bytes free in ${plan.workDir}; the graph export needs about ${neededExportBytes}.`, 'DiskSpace');
  return notes;
}

// --- validation --------------------------------------------------------------

/** Picks `size` ids uniformly from a stream (reservoir sampling). */
function reservoir(size: number) {
  const ids: string[] = [];
  let seen = 0;
  return {
    offer(id: string) {
      seen++;
      if (ids.length < size) ids.push(id);
      else if (Math.random() * seen < size) ids[Math.floor(Math.random() * size)] = id;
    },
    ids,
  };
}

/** Dense vectors value by value, bm25 exactly as it should be computed from the text. */
function vectorProblems(expected: MemoryPoint[], stored: Map<string, MemoryPoint>, plan: QdrantRebuildPlan, pair: Pair): string[] {
  const problems: string[] = [];
  for (const point of expected) {
    const copy = stored.get(point.id);
    if (!copy) continue; // compareSamples reports it missing
    const off = point.vector.findIndex((x, i) => Math.abs(x - copy.vector[i]) > VECTOR_TOLERANCE);
    if (point.vector.length !== copy.vector.length || off !== -1) problems.push(`${point.id}: dense vector differs at index ${off}`);
    const text = wantsBm25(plan) ? bm25TextOf(point.payload, textFieldOf(plan, pair)) : null;
    if (text !== null && !sameSparse(bm25SparseVector(text), copy.sparse?.[BM25_VECTOR_NAME])) problems.push(`${point.id}: bm25 vector differs from the text's`);
  }
  return problems;
}

/** Equal as Qdrant stores them: same indices, values equal at float32 precision. */
function sameSparse(expected: SparseVector, actual: SparseVector | undefined): boolean {
  if (!actual || actual.indices.length !== expected.indices.length) return false;
  const stored = new Map(actual.indices.map((index, i) => [index, actual.values[i]]));
  return expected.indices.every((index, i) => stored.has(index) && Math.fround(stored.get(index)!) === Math.fround(expected.values[i]));
}

interface PairValidation {
  report: ValidationReport;
  bm25Missing: number;
  withText: number;
  /** Points the target should hold as the watermark records them but does not (ids only). */
  problems: string[];
  /** Writes that reached the source after the watermark. */
  since: CatchUpCounts;
}

/**
 * The target against the watermark the last catch-up recorded: it must hold
 * exactly those points (ids, per-user counts, payloads, vectors, bm25). Writes
 * that reached the source since are counted, not held against the copy: they
 * are caught up while approval waits and at cutover.
 */
async function validatePair(plan: QdrantRebuildPlan, pair: Pair, dense: DenseVectorConfig, watermark: Watermark): Promise<PairValidation> {
  const url = plan.qdrant.url;
  const textField = textFieldOf(plan, pair);
  const held = new Map<string, WatermarkEntry>();
  let withText = 0;
  let bm25Missing = 0;
  for await (const point of scan(url, pair.target, { payload: true, vectors: wantsBm25(plan) ? [BM25_VECTOR_NAME] : [] })) {
    held.set(point.id, entryOf(point.payload));
    if (wantsBm25(plan) && bm25TextOf(point.payload, textField) !== null) {
      withText++;
      if (!point.sparse[BM25_VECTOR_NAME]) bm25Missing++;
    }
  }
  const now = await fingerprints(url, pair.source);
  const unchangedSince = (id: string) => now.get(id)?.print === watermark.get(id)!.print;
  const since = {
    added: [...now.keys()].filter((id) => !watermark.has(id)).length,
    changed: [...watermark.keys()].filter((id) => now.has(id) && !unchangedSince(id)).length,
    deleted: [...watermark.keys()].filter((id) => !now.has(id)).length,
  };

  const source = sourceOf(plan, pair, dense);
  const target = targetOf(plan, pair.target, dense);
  const problems = [
    ...[...watermark.keys()].filter((id) => !held.has(id)).map((id) => `${id}: caught up but missing from ${pair.target}`),
    ...[...held.keys()].filter((id) => !watermark.has(id)).map((id) => `${id}: in ${pair.target} but not in the source at the watermark`),
  ];
  // A fingerprint that differs from the recorded one is a candidate; it is an altered point only when the
  // source still holds the watermark's version and the target's payload differs from it as JSON numbers do.
  const suspects = [...held].filter(([id, entry]) => watermark.has(id) && entry.print !== watermark.get(id)!.held && unchangedSince(id)).map(([id]) => id);
  for (let i = 0; i < suspects.length; i += plan.copy.batchSize) {
    const batch = suspects.slice(i, i + plan.copy.batchSize);
    const stored = new Map((await target.retrieve(batch)).map((p) => [p.id, p]));
    for (const point of await source.retrieve(batch)) {
      const fields = differingFields(point.payload, stored.get(point.id)?.payload ?? {});
      if (fields.length) problems.push(`${point.id}: ${fields.join(', ')} differ from the caught-up source`);
    }
    heartbeat();
  }

  const sample = reservoir(plan.validation.sampleSize);
  for (const id of watermark.keys()) if (held.has(id) && unchangedSince(id)) sample.offer(id);
  const expected = await source.retrieve(sample.ids);
  const samples = await compareSamples(expected, target, { vectorsCopied: true });
  const stored = new Map((await target.retrieve(sample.ids)).map((p) => [p.id, p]));
  samples.errors.push(...vectorProblems(expected, stored, plan, pair));

  const watermarkUsers = new Map<string | null, number>();
  const targetUsers = new Map<string, number>();
  for (const { user } of watermark.values()) watermarkUsers.set(user, (watermarkUsers.get(user) ?? 0) + 1);
  for (const { user } of held.values()) if (user !== null) targetUsers.set(user, (targetUsers.get(user) ?? 0) + 1);
  const report = buildReport({
    sourceCount: watermark.size,
    targetCount: await target.count(),
    perUser: await comparePerUser(mismatchesFirst(watermarkUsers, targetUsers), async () => targetUsers),
    samples,
  });
  return { report, bm25Missing, withText, problems, since };
}

/**
 * Source per-user counts with mismatching users first (users only in the
 * target as 0), so the capped per-user list always shows every mismatch.
 */
function mismatchesFirst(source: Map<string | null, number>, target: Map<string, number>): PerUserCount[] {
  const rows: PerUserCount[] = [...source].map(([user, n]) => ({ user, n }));
  for (const user of target.keys()) if (!source.has(user)) rows.push({ user, n: 0 });
  const differs = (row: PerUserCount) => row.user !== null && (target.get(row.user) ?? 0) !== row.n;
  return rows.sort((a, b) => Number(differs(b)) - Number(differs(a)) || String(a.user).localeCompare(String(b.user)));
}

/** One report over all collection pairs: counts summed, checks and users named by collection. */
function combineReports(parts: { pair: Pair; validation: PairValidation }[], caughtUp: CatchUpCounts): ValidationReport {
  const checks: CheckResult[] = parts.flatMap(({ pair, validation }) => [
    ...validation.report.checks.map((check) => ({ ...check, name: `${pair.source} → ${pair.target}: ${check.name}` })),
    {
      name: `${pair.target}: holds the watermark`,
      ok: validation.problems.length === 0,
      detail: `${validation.problems.length} points missing, unexpected or altered against the ${validation.report.sourceCount} caught up`,
    },
    {
      name: `${pair.target}: bm25 coverage`,
      ok: validation.bm25Missing === 0,
      detail: `${validation.withText - validation.bm25Missing}/${validation.withText} points with text have a bm25 vector`,
    },
    {
      name: `${pair.source}: writes since the watermark`,
      ok: true,
      detail: `${describeCounts(validation.since)} since the last catch-up; caught up while approval waits and at cutover`,
    },
  ]);
  checks.push({
    name: 'catch-up',
    ok: true,
    detail: `writes caught up since the copy: ${describeCounts(caughtUp)}`,
  });
  const reports = parts.map((p) => p.validation.report);
  const minCosines = reports.map((r) => r.minCosine).filter((c): c is number => c !== null);
  return {
    ok: checks.every((c) => c.ok),
    sourceCount: reports.reduce((n, r) => n + r.sourceCount, 0),
    targetCount: reports.reduce((n, r) => n + r.targetCount, 0),
    perUser: parts.flatMap(({ pair, validation }) => validation.report.perUser.map((row) => ({ ...row, user: `${pair.source}/${row.user}` }))),
    sampled: reports.reduce((n, r) => n + r.sampled, 0),
    minCosine: minCosines.length ? Math.min(...minCosines) : null,
    checks,
    errors: parts
      .flatMap(({ pair, validation }) => [...validation.problems, ...validation.report.errors].map((e) => `${pair.source}: ${e}`))
      .slice(0, MAX_REPORTED_ERRORS),
  };
}

// --- catch-up ----------------------------------------------------------------

/**
 * One point of a watermark. `print` is the source's payload fingerprint as
 * read from the source; `held` is the target's as read from the target (they
 * differ only where Qdrant re-serialized a float). Comparing prints read from
 * the same store is exact, so only cross-store differences need sameJson.
 */
interface WatermarkEntry {
  print: string;
  held: string;
  user: string | null;
}

/** What a catch-up provably moved: the source points (by id) the target holds as of that moment. */
type Watermark = Map<string, WatermarkEntry>;

function entryOf(payload: Record<string, unknown>): WatermarkEntry {
  const print = payloadFingerprint(payload);
  const user = payload[USER_FIELD];
  return { print, held: print, user: typeof user === 'string' ? user : null };
}

/** Ids whose point `current` holds and `older` lacks or holds differently, and ids `older` holds that `current` deleted. */
async function writesMissingFrom(url: string, current: string, older: string): Promise<string[]> {
  const [now, then] = [await fingerprints(url, current), await fingerprints(url, older)];
  const changed = [...now].filter(([id, entry]) => then.get(id)?.print !== entry.print).map(([id]) => id);
  return [...changed, ...[...then.keys()].filter((id) => !now.has(id))];
}

/** Payload fingerprints of a whole collection: one short entry per point, never points. */
async function fingerprints(url: string, collection: string): Promise<Watermark> {
  const prints: Watermark = new Map();
  for await (const point of scan(url, collection, { payload: true, vectors: [] })) prints.set(point.id, entryOf(point.payload));
  return prints;
}

export function watermarkFileFor(plan: QdrantRebuildPlan, workflowId: string, pair: Pair): string {
  return path.join(plan.workDir, `watermark-${safeId(workflowId)}-${safeId(pair.target)}.json`);
}

async function readWatermark(plan: QdrantRebuildPlan, pair: Pair): Promise<Watermark> {
  const file = watermarkFileFor(plan, currentWorkflow().workflowId, pair);
  const text = await fs.readFile(file, 'utf8').catch(() => fail(`No watermark for '${pair.target}' at ${file}: catch up before validating, cutting over or rolling back.`, 'WatermarkMissing'));
  return new Map(Object.entries(JSON.parse(text).points as Record<string, [string, string, string | null]>).map(([id, [print, held, user]]) => [id, { print, held, user }]));
}

/** Written whole (writeFileAtomically), so a crash never leaves half a watermark. */
async function writeWatermark(plan: QdrantRebuildPlan, pair: Pair, watermark: Watermark): Promise<void> {
  const points = Object.fromEntries([...watermark].map(([id, { print, held, user }]) => [id, [print, held, user]]));
  const text = JSON.stringify({ source: pair.source, target: pair.target, recordedAt: new Date().toISOString(), points });
  await writeFileAtomically(watermarkFileFor(plan, currentWorkflow().workflowId, pair), text, 'workDir');
}

async function inBatches(ids: string[], size: number, work: (batch: string[]) => Promise<void>): Promise<void> {
  for (let i = 0; i < ids.length; i += size) {
    await work(ids.slice(i, i + size));
    heartbeat();
  }
}

/**
 * Brings a target up to its source and records the new watermark. Before the
 * swap only this run writes the target, so every difference is the source's.
 * After the swap (`since` = the watermark at the swap) clients write the target
 * too: a point they changed there since is theirs and newer, so it is left
 * alone (rollback carries it back), and only source writes the target has not
 * seen since are applied.
 */
async function catchUpPair(plan: QdrantRebuildPlan, pair: Pair, dense: DenseVectorConfig, since: Watermark | null): Promise<CatchUpCounts> {
  const url = plan.qdrant.url;
  const held = await fingerprints(url, pair.target);
  const watermark = await fingerprints(url, pair.source);
  const untouched = (id: string) => since === null || held.get(id)?.print === since.get(id)?.held;
  const reference = since === null ? new Map([...held].map(([id, e]) => [id, e.print])) : new Map([...since].map(([id, e]) => [id, e.print]));
  const candidates = [...watermark].filter(([id, e]) => reference.get(id) !== e.print && untouched(id)).map(([id]) => id);
  const deleted = [...reference.keys()].filter((id) => !watermark.has(id) && held.has(id) && untouched(id));
  // The target's version of each point as this catch-up leaves it; where a client changed or deleted it
  // after the swap, the version at the swap, so that rollback sees the client's write and carries it back.
  for (const [id, entry] of watermark) entry.held = (untouched(id) ? held.get(id)?.print : since!.get(id)?.held) ?? '';

  const source = sourceOf(plan, pair, dense);
  const target = targetOf(plan, pair.target, dense);
  const transform = withBm25(plan, pair);
  const counts: CatchUpCounts = { added: 0, changed: 0, deleted: 0 };
  await inBatches(candidates, plan.copy.batchSize, async (batch) => {
    const stored = new Map((await target.retrieve(batch)).map((p) => [p.id, p]));
    const points = await source.retrieve(batch);
    // A fingerprint mismatch across stores is only a candidate: equal payloads (floats within tolerance) are not rewritten.
    const changed = points.filter((p) => !stored.has(p.id) || !sameJson(p.payload, stored.get(p.id)!.payload));
    await target.upsert(await transform(changed));
    for (const point of changed) {
      counts[stored.has(point.id) ? 'changed' : 'added']++;
      watermark.set(point.id, entryOf(point.payload));
    }
    const vanished = batch.filter((id) => !points.some((p) => p.id === id)); // deleted from the source since the scan
    vanished.forEach((id) => watermark.delete(id));
    deleted.push(...vanished.filter((id) => stored.has(id)));
  });
  await inBatches(deleted, plan.copy.batchSize, async (batch) => {
    await target.deletePoints(batch);
    counts.deleted += batch.length;
  });
  await writeWatermark(plan, pair, watermark);
  return counts;
}

export interface CarryBackCounts extends CatchUpCounts {
  /** Points written both in the new collection after cutover and in legacy meanwhile: each keeps its own. */
  conflicts: number;
  /** Their ids, capped. */
  conflictIds: string[];
}

/**
 * Rollback's first step: the writes the new collection took after cutover
 * (added, changed, deleted against the cutover watermark) go into legacy.
 * Legacy is written only where it still holds the cutover version of that
 * point; a point changed there too is a conflict, kept in both collections
 * and reported. Nothing else in legacy is touched.
 */
async function carryBackPair(plan: QdrantRebuildPlan, pair: Pair, dense: DenseVectorConfig): Promise<CarryBackCounts> {
  const url = plan.qdrant.url;
  const record = await readWatermark(plan, pair);
  const live = await fingerprints(url, pair.target);
  const legacyNow = await fingerprints(url, pair.source);
  const atCutover = (id: string) => legacyNow.get(id)?.print === record.get(id)?.print;
  const written = [...live].filter(([id, e]) => record.get(id)?.held !== e.print).map(([id]) => id);
  const deleted = [...record.keys()].filter((id) => !live.has(id) && legacyNow.has(id));

  const legacy = sourceOf(plan, pair, dense);
  const newer = targetOf(plan, pair.target, dense);
  const counts: CarryBackCounts = { added: 0, changed: 0, deleted: 0, conflicts: 0, conflictIds: [] };
  const conflict = (id: string) => {
    counts.conflicts++;
    if (counts.conflictIds.length < MAX_REPORTED_ERRORS) counts.conflictIds.push(id);
  };
  await inBatches(written, plan.copy.batchSize, async (batch) => {
    const inLegacy = new Map((await legacy.retrieve(batch)).map((p) => [p.id, p]));
    const carry: MemoryPoint[] = [];
    for (const { sparse: _bm25, ...point } of await newer.retrieve(batch)) {
      if (inLegacy.has(point.id) && sameJson(point.payload, inLegacy.get(point.id)!.payload)) continue;
      if (!atCutover(point.id)) {
        conflict(point.id);
        continue;
      }
      carry.push(point);
      counts[inLegacy.has(point.id) ? 'changed' : 'added']++;
      record.set(point.id, { ...entryOf(point.payload), held: live.get(point.id)!.print });
    }
    await legacy.upsert(carry);
  });
  deleted.filter((id) => !atCutover(id)).forEach(conflict);
  const deletable = deleted.filter(atCutover);
  await inBatches(deletable, plan.copy.batchSize, async (batch) => {
    await legacy.deletePoints(batch);
    batch.forEach((id) => record.delete(id));
    counts.deleted += batch.length;
  });
  await writeWatermark(plan, pair, record);
  return counts;
}

// --- aliases -----------------------------------------------------------------

/** One atomic request that points each alias at its collection, replacing what it pointed at. */
async function pointAliases(url: string, bindings: { alias: string; collection: string }[]): Promise<string> {
  const current = new Map((await listAliases(url)).map((b) => [b.alias, b.collection]));
  const actions: AliasAction[] = bindings.flatMap(({ alias, collection }) => [
    ...(current.has(alias) ? [{ op: 'delete' as const, alias }] : []),
    { op: 'create' as const, alias, collection },
  ]);
  await updateAliases(url, actions);
  return bindings.map(({ alias, collection }) => `${alias}: ${current.get(alias) ?? '(none)'} → ${collection}`).join('; ');
}

// --- activities --------------------------------------------------------------

export function qdrantRebuildActivities({ client }: { client: Client }) {
  return {
    /** Reachability, names, vector config, space, and the per-user baseline (written to workDir). */
    async preflightQdrantRebuild(plan: QdrantRebuildPlan): Promise<RebuildPreflight> {
      const url = plan.qdrant.url;
      const version = await serverVersion(url).catch((err: Error) => fail(`Qdrant at ${url} is not reachable: ${err.message}`, 'QdrantUnreachable'));
      const names = await inventory(url);
      const notes = [`Qdrant ${version} at ${url}.`];
      const vectors: DenseVectorConfig[] = [];
      const baseline: Record<string, { total: number; users: Record<string, number> }> = {};
      let points = 0;
      let users = 0;
      let neededBytes = 0;
      for (const pair of plan.collections) {
        assertSourceExists(pair, url, names);
        const description = await describeCollection(url, pair.source);
        const dense = denseVectorOf(pair, description, plan.schema.dense);
        const targetNote = await assertTargetUsable(plan, pair, dense, names);
        const aliasNote = aliasPlanFor(pair, names);
        const counts = await countByUser(url, pair.source);
        const total = [...counts.values()].reduce((a, b) => a + b, 0);
        vectors.push(dense);
        points += total;
        users += [...counts.keys()].filter((u) => u !== null).length;
        neededBytes += 2 * total * (dense.size * 4 + PAYLOAD_BYTES_ESTIMATE);
        baseline[pair.source] = { total, users: Object.fromEntries([...counts].map(([user, n]) => [user ?? '(no user_id)', n])) };
        notes.push(
          `${pair.source}: ${total} points from ${counts.size} users, ${dense.size}-dim ${dense.distance} (${dense.name === null ? 'unnamed' : `'${dense.name}'`}). ${targetNote}`,
          aliasNote,
        );
      }
      let graphNodes = 0;
      if (plan.graph) {
        const graph = await graphCounts(plan.graph).catch((err: Error) => fail(`Neo4j at ${plan.graph!.uri} is not usable: ${err.message}`, 'GraphUnreachable'));
        graphNodes = graph.nodes;
        notes.push(`Neo4j ${plan.graph.uri}: ${graph.nodes} nodes, ${graph.relationships} relationships to export.`);
      }
      await fs.mkdir(plan.workDir, { recursive: true });
      notes.push(...(await checkSpace(plan, neededBytes, graphNodes)));
      const baselineFile = await assertWritableFile(baselineFileFor(plan, currentWorkflow().workflowId), 'workDir');
      await fs.writeFile(baselineFile, `${JSON.stringify({ recordedAt: new Date().toISOString(), collections: baseline }, null, 2)}\n`);
      notes.push(`Per-user baseline (exact counts) recorded in ${baselineFile}.`);
      return { points, users, vectors, baselineFile, notes };
    },

    /** One snapshot per source, confirmed by listing it; kept for the rollback. */
    async snapshotSourceCollections(plan: QdrantRebuildPlan): Promise<{ collection: string; name: string; checksum: string | null }[]> {
      const taken = [];
      for (const { source } of plan.collections) {
        const snapshot = await createSnapshot(plan.qdrant.url, source);
        const listed = await listSnapshots(plan.qdrant.url, source);
        if (!listed.some((s) => s.name === snapshot.name)) throw new Error(`Snapshot ${snapshot.name} of '${source}' is not listed by Qdrant`);
        taken.push({ collection: source, name: snapshot.name, checksum: snapshot.checksum });
      }
      return taken;
    },

    /** The decommission dump, taken with Neo4j running: JSONL plus a manifest with counts. */
    async exportGraphForDecommission(plan: QdrantRebuildPlan) {
      const file = await assertWritableFile(graphExportFileFor(plan, currentWorkflow().workflowId), 'workDir');
      const summary = await exportGraph({ ...plan.graph!, file }, (done) => heartbeat(done));
      return { file: summary.file, manifestFile: summary.manifestFile, nodes: summary.nodes, relationships: summary.relationships };
    },

    /** Restores an export into an empty Neo4j (refused otherwise); counts checked against the manifest. */
    async restoreGraphExport(input: GraphFile) {
      const restored = await restoreGraph(input, (done) => heartbeat(done));
      return { nodes: restored.nodes, relationships: restored.relationships };
    },

    /** Creates each target with the new schema (idempotent on retry) and its keyword indexes. */
    async prepareRebuildTargets(plan: QdrantRebuildPlan, vectors: DenseVectorConfig[]): Promise<{ created: string[] }> {
      const created: string[] = [];
      for (const [index, pair] of plan.collections.entries()) {
        const target = targetOf(plan, pair.target, vectors[index]);
        if (!(await target.describe()).exists) {
          await target.create(vectors[index].size);
          created.push(pair.target);
        }
        for (const field of plan.schema.keywordIndexes) await createPayloadIndex(plan.qdrant.url, pair.target, field, 'keyword');
      }
      return { created };
    },

    /** The copy engine over one collection pair; progress adds to the pairs copied before it. */
    async copyRebuildCollection(
      plan: QdrantRebuildPlan,
      index: number,
      dense: DenseVectorConfig,
      before: { copied: number; total: number },
    ): Promise<CopyResult> {
      const pair = plan.collections[index];
      const channel = workflowCopyChannel(client);
      const overall: CopyChannel = {
        control: () => channel.control(),
        report: (progress) => channel.report({ ...progress, copied: before.copied + progress.copied, total: Math.max(before.total, before.copied + progress.total) }),
      };
      return copyPointsResumably({ source: sourceOf(plan, pair, dense), target: targetOf(plan, pair.target, dense), channel: overall, transform: withBm25(plan, pair) });
    },

    /** Point ids splitting one source into `parts` ranges of about equal size, for a partitioned copy (kept in workflow state). */
    async splitRebuildCopy(plan: QdrantRebuildPlan, index: number, dense: DenseVectorConfig, parts: number): Promise<string[]> {
      return sourceOf(plan, plan.collections[index], dense).splitKeys(parts);
    },

    /** One range of a partitioned copy of one collection pair, with its own heartbeated cursor. */
    async copyRebuildRange(plan: QdrantRebuildPlan, index: number, dense: DenseVectorConfig, range: CopyRange): Promise<CopyResult> {
      const pair = plan.collections[index];
      const job = { source: sourceOf(plan, pair, dense), target: targetOf(plan, pair.target, dense), channel: rangeCopyChannel(client), transform: withBm25(plan, pair) };
      return copyRangeResumably(job, range);
    },

    /**
     * One id range of one pair's exhaustive validation: source and target side
     * by side in id order, every point's payload, dense vector and bm25
     * compared. Against the last catch-up's watermark: points added, changed or
     * deleted in the source since are counted as written since, not failures.
     */
    async validateRebuildRange(plan: QdrantRebuildPlan, index: number, dense: DenseVectorConfig, range: IdRange): Promise<ExhaustiveComparison & { problems: string[] }> {
      const pair = plan.collections[index];
      const watermark = await readWatermark(plan, pair);
      const textField = textFieldOf(plan, pair);
      return compareEveryPoint(
        sourceOf(plan, pair, dense).streamIdRange(range, COMPARE_PAGE),
        targetOf(plan, pair.target, dense).streamIdRange(range, COMPARE_PAGE),
        {
          vectorsCopied: true,
          writtenSince: (source, copy) => {
            const recorded = watermark.get((source ?? copy)!.id);
            return source ? recorded?.print !== payloadFingerprint(source.payload) : recorded !== undefined;
          },
          extraProblem: (source, copy) => {
            const text = wantsBm25(plan) ? bm25TextOf(source.payload, textField) : null;
            return text !== null && !sameSparse(bm25SparseVector(text), copy.sparse?.[BM25_VECTOR_NAME]) ? 'bm25 vector differs from the text\'s' : null;
          },
        },
        (compared) => heartbeat({ range: range.index, compared }),
      );
    },

    /**
     * Copies what was added or changed in the sources since they were read, drops what was deleted, and
     * records the watermark. `afterSwap`: the targets are live, so their clients' writes are kept.
     */
    async catchUpRebuildTargets(plan: QdrantRebuildPlan, vectors: DenseVectorConfig[], afterSwap = false): Promise<CatchUpCounts> {
      const total: CatchUpCounts = { added: 0, changed: 0, deleted: 0 };
      for (const [index, pair] of plan.collections.entries()) {
        const counts = await catchUpPair(plan, pair, vectors[index], afterSwap ? await readWatermark(plan, pair) : null);
        total.added += counts.added;
        total.changed += counts.changed;
        total.deleted += counts.deleted;
      }
      return total;
    },

    /** Against the last watermark: exact totals and per-user counts, every point's payload, sampled vectors, bm25 coverage. */
    async validateRebuild(plan: QdrantRebuildPlan, vectors: DenseVectorConfig[], caughtUp: CatchUpCounts): Promise<ValidationReport> {
      const parts = [];
      for (const [index, pair] of plan.collections.entries()) {
        parts.push({ pair, validation: await validatePair(plan, pair, vectors[index], await readWatermark(plan, pair)) });
      }
      return combineReports(parts, caughtUp);
    },

    /** Rollback's carry-back: the new collections' writes since cutover into the legacy ones (see carryBackPair). */
    async carryBackPostCutoverWrites(plan: QdrantRebuildPlan, vectors: DenseVectorConfig[]): Promise<CarryBackCounts> {
      const total: CarryBackCounts = { added: 0, changed: 0, deleted: 0, conflicts: 0, conflictIds: [] };
      for (const [index, pair] of plan.collections.entries()) {
        const counts = await carryBackPair(plan, pair, vectors[index]);
        total.added += counts.added;
        total.changed += counts.changed;
        total.deleted += counts.deleted;
        total.conflicts += counts.conflicts;
        total.conflictIds = [...total.conflictIds, ...counts.conflictIds].slice(0, MAX_REPORTED_ERRORS);
      }
      return total;
    },

    /** Drops the target collections this run created; never one that existed before it. */
    async dropRebuildTargets(plan: QdrantRebuildPlan, created: string[]): Promise<void> {
      for (const { target } of plan.collections) if (created.includes(target)) await deleteCollection(plan.qdrant.url, target);
    },

    /** The cutover: every serving alias moved to its new collection in one atomic request. */
    async swapServingAliases(plan: QdrantRebuildPlan): Promise<{ summary: string }> {
      const { collections } = await inventory(plan.qdrant.url);
      const clash = plan.collections.find((pair) => collections.has(pair.alias));
      if (clash) fail(`'${clash.alias}' became a collection after preflight; the cutover cannot alias it. Nothing was changed.`, 'AliasIsCollection');
      const summary = await pointAliases(plan.qdrant.url, plan.collections.map((pair) => ({ alias: pair.alias, collection: pair.target })));
      return { summary };
    },

    /**
     * Through each alias: it names the new collection before and after the reads, a sample reads back as in
     * the source, a bm25 query finds its point. Clients keep writing through the aliases meanwhile, so nothing
     * here compares two reads taken at different moments, and a probed point they change during the reads is
     * left out rather than called damaged.
     */
    async verifyRebuildCutover(plan: QdrantRebuildPlan): Promise<{ summary: string }> {
      const url = plan.qdrant.url;
      const assertServed = async () => {
        const bound = new Map((await listAliases(url)).map((b) => [b.alias, b.collection]));
        const stray = plan.collections.find((pair) => bound.get(pair.alias) !== pair.target);
        if (stray) fail(`Alias '${stray.alias}' points at '${bound.get(stray.alias) ?? 'nothing'}', not '${stray.target}'`, 'VerifyFailed');
      };
      await assertServed();
      const lines: string[] = [];
      for (const pair of plan.collections) {
        const dense = (await describeCollection(url, pair.target)).dense[0];
        const viaAlias = targetOf(plan, pair.alias, dense);
        const served = await viaAlias.count();
        const record = await readWatermark(plan, pair); // every id's prints: read once, filtered against twice
        const probe = await untouchedSinceCutover(record, viaAlias, (await sourceOf(plan, pair, dense).readPage(null, 10)).points);
        const samples = await compareSamples(probe, viaAlias, { vectorsCopied: true });
        const bm25 = wantsBm25(plan) ? await bm25ProbeProblem(plan, pair, viaAlias, probe) : null;
        const unwritten = new Set((await untouchedSinceCutover(record, viaAlias, probe)).map((p) => p.id));
        const errors = errorsAbout(samples.errors, unwritten);
        if (errors.length) fail(`Reading through '${pair.alias}' differs from the source: ${errors.join('; ')}`, 'VerifyFailed');
        if (bm25 && unwritten.has(bm25.pointId)) fail(bm25.problem, 'VerifyFailed');
        const written = probe.length - unwritten.size;
        lines.push(
          `${pair.alias} → ${pair.target}: ${served} points, ${unwritten.size} sampled equal` +
            `${written ? ` (${written} more written by clients while read, not judged)` : ''}${wantsBm25(plan) ? ', bm25 query answered' : ''}`,
        );
      }
      await assertServed();
      return { summary: lines.join('; ') };
    },

    /**
     * Aliases back to the legacy collections (or to snapshot copies), optionally
     * the graph restored. A snapshot predates every write since the backup
     * (and the carried-back post-cutover ones): it is served only when it
     * lacks none of them or the request accepts the loss; an automatic
     * rollback (request null) serves the legacy collection instead.
     */
    async rollbackRebuild(
      plan: QdrantRebuildPlan,
      snapshots: { collection: string; name: string; checksum?: string | null }[],
      request: RollbackRequest | null = null,
    ): Promise<{ summary: string }> {
      const url = plan.qdrant.url;
      const serving = [];
      const parts: string[] = [];
      for (const pair of plan.collections) {
        if (!plan.rollback.fromSnapshot) {
          serving.push({ alias: pair.alias, collection: pair.source });
          continue;
        }
        const snapshot = snapshots.find((s) => s.collection === pair.source);
        if (!snapshot) fail(`No snapshot of '${pair.source}' was taken; cannot roll back from a snapshot.`, 'SnapshotMissing');
        const location = snapshotLocation(url, pair.source, snapshot.name);
        const recovered = rollbackCollectionOf(pair);
        await heartbeatWhile(() => recoverSnapshot(url, recovered, location, snapshot.checksum ?? undefined));
        const undone = await writesMissingFrom(url, pair.source, recovered);
        if (undone.length && !request?.acceptLoss) {
          if (request) {
            fail(
              `Serving the snapshot of '${pair.source}' would undo ${undone.length} writes made since it was taken (${undone.slice(0, MAX_REPORTED_ERRORS).join(', ')}); ` +
                `no alias was moved. Send rollback again with "acceptLoss": true to accept that; '${pair.source}' holds them all.`,
              'RollbackWouldLoseWrites',
            );
          }
          parts.push(`'${pair.source}' served rather than its snapshot, which lacks ${undone.length} writes made since it was taken`);
          serving.push({ alias: pair.alias, collection: pair.source });
          continue;
        }
        if (undone.length) parts.push(`the snapshot of '${pair.source}' served as accepted, undoing ${undone.length} writes that '${pair.source}' keeps`);
        serving.push({ alias: pair.alias, collection: recovered });
      }
      parts.unshift(`aliases ${await pointAliases(url, serving)}`);
      if (plan.rollback.restoreGraph && plan.graph) {
        const file = graphExportFileFor(plan, currentWorkflow().workflowId);
        const restored = await heartbeatWhile(() => restoreGraph({ ...plan.graph!, file }, (done) => heartbeat(done)));
        parts.push(`Neo4j restored from ${file}: ${restored.nodes} nodes, ${restored.relationships} relationships`);
      }
      parts.push(`${plan.collections.map((c) => c.target).join(', ')} kept for inspection`);
      return { summary: `${parts.join('; ')}.` };
    },
  };
}

/** Probe points neither collection has changed since the cutover watermark: clients keep writing while verify reads. */
async function untouchedSinceCutover(record: Watermark, viaAlias: QdrantCollection, probe: MemoryPoint[]): Promise<MemoryPoint[]> {
  const served = new Map((await viaAlias.retrieve(probe.map((p) => p.id))).map((p) => [p.id, payloadFingerprint(p.payload)]));
  return probe.filter((p) => payloadFingerprint(p.payload) === record.get(p.id)?.print && served.get(p.id) === record.get(p.id)?.held);
}

/** mem0 2.x embeds its search text with the same BM25 encoder; the probe's own text must find it (or a point with the same text). */
async function bm25ProbeProblem(
  plan: QdrantRebuildPlan,
  pair: Pair,
  viaAlias: QdrantCollection,
  probe: MemoryPoint[],
): Promise<{ pointId: string; problem: string } | null> {
  const textField = textFieldOf(plan, pair);
  const point = probe.find((p) => bm25TextOf(p.payload, textField) !== null && bm25SparseVector(bm25TextOf(p.payload, textField)!).indices.length > 0);
  if (!point) return null;
  const text = bm25TextOf(point.payload, textField)!;
  const hits = await viaAlias.nearest({ sparse: bm25SparseVector(text), using: BM25_VECTOR_NAME }, 10);
  if (hits.some((hit) => hit.id === point.id)) return null;
  const found = await viaAlias.retrieve(hits.map((hit) => hit.id));
  if (found.some((hit) => bm25TextOf(hit.payload, textField) === text)) return null;
  return { pointId: point.id, problem: `A bm25 query through '${pair.alias}' for point ${point.id}'s text did not find it (${hits.length} hits)` };
}
