/**
 * A catch-up removes target points whose source row is gone, found by
 * reading both sides in id order side by side (memory flat however large the
 * store). A target that lists ids out of that order would make a present
 * point look gone: the merge stops instead of removing anything.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { targetIdsNotInSource } from '../activities/sqlite-vec';
import { openReadOnly, pointIdForContentHash, type SqliteDb } from '../activities/stores/sqlite';
import type { TargetStore } from '../activities/targets';
import { generateMcpStore } from '../scripts/generate-mcp-store';

let dir: string;
let db: SqliteDb;
let sourceIds: string[];

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'memshift-orphans-'));
  generateMcpStore(path.join(dir, 'mcp.db'), { count: 300, dimensions: 8, deletedEvery: 10 });
  db = openReadOnly(path.join(dir, 'mcp.db'));
  const hashes = db.prepare('SELECT content_hash FROM memories WHERE deleted_at IS NULL').pluck().all() as string[];
  sourceIds = hashes.map(pointIdForContentHash).sort();
});

afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A target that lists `ids` as they are, in pages of 100. */
function targetListing(ids: string[]): TargetStore {
  return {
    readIds: async (cursor: string | null, limit: number) => {
      const from = cursor === null ? 0 : Number(cursor);
      const next = from + Math.min(limit, 100);
      return { ids: ids.slice(from, next), next: next < ids.length ? String(next) : null };
    },
  } as unknown as TargetStore;
}

async function notInSource(ids: string[]): Promise<string[]> {
  return new MockActivityEnvironment().run(async () => {
    const found: string[] = [];
    for await (const id of targetIdsNotInSource(db, false, targetListing(ids))) found.push(id);
    return found;
  });
}

it('names exactly the target ids the source has no live row for: extra points, and the copies of soft-deleted rows', async () => {
  const deleted = pointIdForContentHash(db.prepare('SELECT content_hash FROM memories WHERE deleted_at IS NOT NULL').pluck().get() as string);
  const extra = ['00000000-0000-4000-8000-000000000000', 'ffffffff-ffff-4fff-bfff-ffffffffffff'];
  expect(await notInSource([extra[0], ...[...sourceIds, deleted].sort(), extra[1]])).toEqual([extra[0], deleted, extra[1]].sort());
  expect(await notInSource(sourceIds.slice(0, 50))).toEqual([]);
});

it('a target listing ids out of order stops the merge as TargetIdOrder before anything is named', async () => {
  const shuffled = [...sourceIds];
  [shuffled[120], shuffled[121]] = [shuffled[121], shuffled[120]];
  await expect(notInSource(shuffled)).rejects.toMatchObject({ type: 'TargetIdOrder', nonRetryable: true });
});
