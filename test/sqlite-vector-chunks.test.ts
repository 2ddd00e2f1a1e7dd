/**
 * The copy's pages and the pass over every point read a SQLite-vec store's
 * embeddings from sqlite-vec's own chunks rather than through vec0 row by
 * row. These tests
 * hold it to vec0's answers on a store the way a live service leaves it:
 * rows deleted and soft-deleted, embeddings replaced (a new slot, the old one
 * cleared), a row without an embedding; and show that a store whose layout
 * is not the known one is read through vec0 instead, with the same result.
 */
import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DigestedPoint, Page } from '../activities/stores/contract';
import type { IdRange } from '../workflows/messages';
import { splitIdRange } from '../activities/stores/key-order';
import { storedDigest } from '../activities/stores/pgvector-digest';
import { McpMemorySource, openReadOnly, openWritable, vectorChunksOf } from '../activities/stores/sqlite';
import { generateMcpStore } from '../scripts/generate-mcp-store';

const WHOLE: IdRange = { index: 0, from: null, to: null };
let dir: string;
let store: string;
/** The same store with its layout's record removed: read through vec0. */
let older: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'memshift-chunks-'));
  store = path.join(dir, 'mcp.db');
  generateMcpStore(store, { count: 3_000, dimensions: 16, users: ['u1', 'u2'] }); // three chunks of 1,024 vectors
  const db = openWritable(store);
  db.exec(`
    DELETE FROM memories WHERE id IN (5, 1500);
    DELETE FROM memory_embeddings WHERE rowid IN (5, 1500, 2999);
    UPDATE memories SET deleted_at = 1700000000 WHERE id IN (7, 2000)`);
  // Replaced embeddings move to another slot; row 2999 is left with none.
  const replace = db.prepare('INSERT INTO memory_embeddings (rowid, content_embedding) VALUES (?, ?)');
  for (const rowid of [10n, 1024n, 2500n]) {
    db.prepare('DELETE FROM memory_embeddings WHERE rowid = ?').run(rowid);
    replace.run(rowid, Buffer.from(new Float32Array(16).fill(Number(rowid) / 7).buffer));
  }
  db.close();
  older = path.join(dir, 'older.db');
  copyFileSync(store, older);
  const olderDb = new Database(older);
  olderDb.exec("DELETE FROM memory_embeddings_info WHERE key = 'CREATE_VERSION'");
  olderDb.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function digestsOf(file: string, includeDeleted: boolean, range: IdRange = WHOLE): Promise<DigestedPoint[]> {
  const source = new McpMemorySource(openReadOnly(file), includeDeleted);
  const digests: DigestedPoint[] = [];
  for await (const page of source.streamDigestsByPointId(range, 100)) digests.push(...page);
  await source.close();
  return digests;
}

/** What vec0 itself gives for each digested row, digested the same way. */
function vec0Digests(file: string, includeDeleted: boolean, rows: DigestedPoint[]): DigestedPoint[] {
  const source = new McpMemorySource(openReadOnly(file), includeDeleted);
  const digests = rows.map((row) => {
    const point = source.pointAt(row.at!)!;
    return { id: point.id, digest: storedDigest(point.payload, new Uint8Array(Float32Array.from(point.vector).buffer)), at: row.at };
  });
  void source.close();
  return digests;
}

it('a store sqlite-vec 0.1 made is read by chunks, and every digest equals the one made from what vec0 returns', async () => {
  expect(vectorChunksOf(openReadOnly(store))).toEqual({ table: 'memory_embeddings_vector_chunks00', vectorBytes: 64 });
  for (const includeDeleted of [false, true]) {
    const digests = await digestsOf(store, includeDeleted);
    expect(digests.length).toBe(includeDeleted ? 2_998 : 2_996);
    expect(digests).toEqual(vec0Digests(store, includeDeleted, digests));
    expect(digests.map((d) => d.id)).toEqual(digests.map((d) => d.id).sort()); // merged from the threads in point-id order
    expect(new Set(digests.map((d) => d.at))).toContain(2999); // the row without an embedding is read too
  }
});

it('ranges of point ids read the same rows as the whole, each once', async () => {
  const whole = await digestsOf(store, false);
  const parts = [];
  for (const range of splitIdRange(WHOLE, 3)) parts.push(...(await digestsOf(store, false, range)));
  expect(parts).toEqual(whole);
});

it('a store whose layout sqlite-vec did not record as 0.1 is read through vec0, with the same digests', async () => {
  expect(vectorChunksOf(openReadOnly(older))).toBeUndefined();
  expect(await digestsOf(older, false)).toEqual(await digestsOf(store, false));
});

/** Every page a copy reads (readPage, or each range's after splitKeys), read page by page as the copy does. */
async function pagesOf(file: string, includeDeleted: boolean, parts = 1, inTransaction = false): Promise<Page[]> {
  const db = openReadOnly(file);
  const whole = new McpMemorySource(db, includeDeleted);
  const keys = await whole.splitKeys(parts);
  const sources = parts === 1 ? [whole] : [null, ...keys].map((start, i) => whole.range({ index: i, start, end: keys[i] ?? null }));
  if (inTransaction) db.exec('BEGIN'); // a catch-up reads in a snapshot of its own
  const pages: Page[] = [];
  for (const source of sources) {
    for (let cursor: string | null = null; ; ) {
      const page = await source.readPage(cursor, 100);
      pages.push(page);
      if ((cursor = page.next) === null) break;
    }
  }
  if (inTransaction) db.exec('COMMIT');
  await whole.close();
  return pages;
}

it('the copy reads the same pages by chunks as through vec0: every vector, payload and cursor', async () => {
  for (const includeDeleted of [false, true]) {
    const byChunks = await pagesOf(store, includeDeleted);
    const points = byChunks.flatMap((page) => page.points);
    expect(points.length).toBe(includeDeleted ? 2_998 : 2_996);
    expect(byChunks).toEqual(await pagesOf(older, includeDeleted));
    expect(points.find((p) => p.payload.source_id === 2999)!.vector).toEqual([]); // no embedding, as vec0 says
    expect(points.find((p) => p.payload.source_id === 1024)!.vector).toEqual(Array(16).fill(Math.fround(1024 / 7))); // its replacement
    expect(await pagesOf(store, includeDeleted, 3)).toEqual(await pagesOf(older, includeDeleted, 3));
  }
  expect(await pagesOf(store, false, 1, true)).toEqual(await pagesOf(older, false));
});
