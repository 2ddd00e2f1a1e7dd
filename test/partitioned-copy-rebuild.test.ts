/**
 * qdrantCollectionRebuild with its copy split into ranges: both collection
 * pairs copied in parallel ranges, validated point by point, cut over. A
 * dense vector damaged in the target after it was copied — which neither the
 * catch-up (payload fingerprints) nor a one-point sample can see — is named
 * by the exhaustive pass and blocks the cutover.
 */
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { QdrantCollection } from '../activities/stores/qdrant';
import { generateMem0Collections } from '../scripts/generate-mem0-collection';
import { approveUpdate, pauseUpdate, resumeUpdate } from '../workflows/messages';
import { qdrantCollectionRebuild, type QdrantRebuildPlanInput } from '../workflows/qdrant-collection-rebuild';
import { connectClient, failureType, startWorker, tempDir, uniqueQueue, waitForPhase, waitForStatus } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';

const MEMORIES = 6_000;
const RANGES = 3;

let client: Client;
let worker: { stop(): Promise<void> };
let qdrant: TestQdrant;
const taskQueue = uniqueQueue('rebuild-ranges');
const workDir = tempDir();

beforeAll(async () => {
  [client, qdrant] = await Promise.all([connectClient(), startTestQdrant()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await qdrant?.stop();
});

async function planFor(): Promise<QdrantRebuildPlanInput & { collections: { source: string; target: string; alias: string }[] }> {
  const base = uniqueName('mem0');
  await generateMem0Collections(qdrant.url, { collection: base, count: MEMORIES, dimensions: 32, entitiesPerUser: 20 });
  return {
    qdrant: { url: qdrant.url },
    collections: [
      { source: base, target: `${base}_v2`, alias: `${base}_live` },
      { source: `${base}_entities`, target: `${base}_v2_entities`, alias: `${base}_live_entities` },
    ],
    workDir,
    copy: { batchSize: 200, concurrency: 2, partitions: RANGES },
    retention: '0s',
  };
}

const countOf = (collection: string) => new QdrantCollection(qdrant.url, collection).count();

it('both pairs copied in ranges, every point validated, cut over', async () => {
  const plan = await planFor();
  const total = (await countOf(plan.collections[0].source)) + (await countOf(plan.collections[1].source));
  const handle = await client.workflow.start(qdrantCollectionRebuild, { taskQueue, workflowId: uniqueName('rebuild'), args: [plan] });
  const waiting = await waitForPhase(handle, 'await-approval', 300_000);
  expect(waiting.copy).toMatchObject({ copied: total, ranges: { done: waiting.copy.ranges!.count } });
  expect(waiting.copy.ranges!.count).toBeGreaterThan(RANGES); // both pairs split (the entities one may be too small for all 3)
  expect(waiting.report?.exhaustive).toMatchObject({ compared: total, equal: total, missing: 0, extra: 0, different: 0, ranges: 2 * RANGES });
  expect(waiting.report?.checks.filter((c) => c.name.endsWith('every point')).map((c) => c.ok)).toEqual([true, true]);
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
  expect((await handle.result()).outcome).toBe('cut-over');
  expect(await countOf(plan.collections[0].target)).toBe(await countOf(plan.collections[0].source));
}, 600_000);

it('a dense vector damaged after the copy is named by the exhaustive pass and blocks the cutover', async () => {
  const plan = { ...(await planFor()), validation: { sampleSize: 1 } };
  const target = new QdrantCollection(qdrant.url, plan.collections[0].target);
  qdrant.double?.faults.set({ latencyMs: 20, onlyPaths: /\/points$/ });
  const handle = await client.workflow.start(qdrantCollectionRebuild, { taskQueue, workflowId: uniqueName('rebuild'), args: [plan] });
  let damaged: string;
  try {
    // Pause once the first pages have landed. (Not at a copied count: the status learns a range's count
    // when the range ends, and on an idle machine all ranges end within one poll of each other.)
    await waitForStatus(handle, (s) => s.phase === 'copy', 300_000);
    while ((await target.count().catch(() => 0)) === 0) await new Promise((r) => setTimeout(r, 50));
    await handle.executeUpdate(pauseUpdate, { args: [{ by: 'ops' }] });
    await new Promise((r) => setTimeout(r, 3_000)); // pages in flight land; then nothing writes the target
    const [point] = (await target.readPage(null, 1)).points;
    damaged = point.id;
    await target.upsert([{ ...point, vector: point.vector.map((x, i) => (i === 0 ? -x || 1 : x)) }]);
  } finally {
    qdrant.double?.faults.clear();
  }
  await handle.executeUpdate(resumeUpdate, { args: [{ by: 'ops' }] });
  expect(await failureType(handle)).toBe('ValidationFailed');
  const status = await waitForStatus(handle, () => true);
  expect(status.report?.exhaustive).toMatchObject({ different: 1, missing: 0, extra: 0, differentIds: [damaged!] });
  expect(status.report?.errors).toContain(`${damaged!}: vector differs`);
  expect(status.outcome).toBeNull(); // failed before any cutover: the aliases never moved
}, 600_000);
