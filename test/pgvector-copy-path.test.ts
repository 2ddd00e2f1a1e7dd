/**
 * The pgvector write path (binary COPY straight into the table while every id
 * is new, else into a session-local staging table and one INSERT … SELECT …
 * ON CONFLICT) stores every payload the adapters
 * carry exactly as given, is idempotent, and classifies what PostgreSQL
 * refuses. Runs on whatever startTestPostgres() gives: native PostgreSQL by
 * default (the COPY path), PGlite with MEMSHIFT_PG=pglite (its array fallback).
 */
import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryPoint } from '../activities/stores/contract';
import { storedDigest } from '../activities/stores/pgvector-digest';
import { PgvectorTable } from '../activities/stores/postgres';
import { compareIds } from '../activities/stores/key-order';
import { compareEveryPoint } from '../activities/validation';
import { seededRandom } from '../scripts/seeded-random';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';

const DIMENSIONS = 384;
let postgres: TestPostgres;
let isPglite: boolean;
const tables: PgvectorTable[] = [];

beforeAll(async () => {
  postgres = await startTestPostgres();
  const client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  isPglite = (await client.query<{ version: string }>('SELECT version() AS version')).rows[0].version.includes('PGlite');
  await client.end();
});

afterAll(async () => {
  for (const table of tables) await table.close();
  await postgres?.stop();
});

async function freshTable(): Promise<PgvectorTable> {
  const table = new PgvectorTable({ url: postgres.url, schema: 'public', table: uniqueName('copy_path') });
  tables.push(table);
  await table.create(DIMENSIONS);
  return table;
}

const random = seededRandom(11);
let idCounter = 0;
function pointId(): string {
  idCounter += 1;
  return `00000000-0000-4000-8000-${idCounter.toString(16).padStart(12, '0')}`;
}

/** Float32 values, as SQLite-vec stores them, including the extremes of the type. */
function float32Vector(): number[] {
  const vector = Array.from({ length: DIMENSIONS }, () => Math.fround((random() - 0.5) * 2));
  vector[0] = 1.401298464324817e-45; // smallest subnormal
  vector[1] = -3.4028234663852886e38; // most negative
  vector[2] = 3.4028234663852886e38; // largest
  vector[3] = Math.fround(1 / 3);
  vector[4] = 0;
  return vector;
}

const everyControlCharButNul = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('') + '\u007f\u0085';
const twentyKb = Array.from({ length: 450 }, (_, i) => `line ${i}\tüñï "q" \\ 🧠 ${'x'.repeat(20)}\n`).join('');

/** Every kind of value a memory payload carries, each a hazard for some encoding. */
const TRICKY_PAYLOADS: Record<string, unknown>[] = [
  { content: 'Grüße, 日本語, עברית, emoji 🧠🚀 (astral plane), 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, e\u0301 a\u0308 o\u0302\u0323 (combining marks), zwj 👩\u200d💻, BOM \ufeff' },
  { content: `single ' double " backtick \` and '); DROP TABLE memories; --` },
  { content: 'C:\\path\\to\\file \\N \\. \\\\ \\t is not a tab \\u0041 is not A \\x41' },
  { content: 'tab\there\nnewline\r\nCRLF\rCR alone\n\n\t\ttrailing\t' },
  { content: everyControlCharButNul, tags: ['\u0001', '\u001f', '\b\f'] },
  { content: '\\.\n\\N\t\\.', note: 'COPY text markers as content: end of data, NULL, delimiter' },
  { content: twentyKb },
  {
    content: 'nested',
    metadata: {
      user_id: 'u1',
      deep: { a: [1, { b: [[], {}, ''], c: null, d: [[[['down']]]] }], 'key with "quotes" and \\ and \t': { '': 'empty key', '🧠': true, 'é': false } },
      list: [{ x: 1 }, { x: [2, '3', null] }],
    },
  },
  {
    content: 'numbers',
    created_at: 1700000000.8524659, // needs 17 significant digits
    updated_at: 0.30000000000000004,
    pi: Math.PI,
    tiny: 5e-324,
    huge: 1.7976931348623157e308,
    negative: -123456.78901234567,
    largest_safe_int: Number.MAX_SAFE_INTEGER,
    zero: 0,
    exponent: 1e21,
  },
  { content: '', tags: [], metadata: {}, memory_type: null, empty: { string: '', array: [], object: {} } },
];

function trickyBatch(): MemoryPoint[] {
  return TRICKY_PAYLOADS.map((payload) => ({ id: pointId(), vector: float32Vector(), payload }));
}

/** Vectors compared as the float32 bits pgvector holds. */
function float32Bits(vector: number[]): Buffer {
  return Buffer.from(Float32Array.from(vector).buffer);
}

async function expectStoredExactly(table: PgvectorTable, points: MemoryPoint[]): Promise<void> {
  const stored = new Map((await table.retrieve(points.map((p) => p.id))).map((p) => [p.id, p]));
  expect(stored.size).toBe(points.length);
  for (const point of points) {
    const actual = stored.get(point.id)!;
    expect(actual.payload).toStrictEqual(point.payload);
    expect(float32Bits(actual.vector).equals(float32Bits(point.vector)), `vector of ${point.id}`).toBe(true);
  }
}

async function rejection(write: Promise<void>): Promise<ApplicationFailure> {
  const err = await write.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('pgvector write path', () => {
  it('stores every payload the adapters carry byte-exactly, and vectors as the exact float32 values', async () => {
    const table = await freshTable();
    const batch = trickyBatch();
    await table.upsert(batch);
    expect(await table.count()).toBe(batch.length);
    await expectStoredExactly(table, batch);
    // The strings themselves, not just their parse: jsonb keeps text byte for byte.
    const [long] = await table.retrieve([batch[6].id]);
    expect(Buffer.from(String(long.payload.content)).equals(Buffer.from(twentyKb))).toBe(true);
    expect(Buffer.byteLength(twentyKb)).toBeGreaterThanOrEqual(20_480);
  });

  it('copies new ids straight into the table, and goes through a session-local staging table only when ids exist (PGlite: one INSERT of arrays)', async () => {
    const table = await freshTable();
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    // pg_class lists every session's temporary tables: a new staging table means a write went through staging.
    const stagingTables = async () =>
      Number((await client.query(`SELECT count(*) AS n FROM pg_class WHERE relname = 'memshift_staging' AND relpersistence = 't'`)).rows[0].n);
    try {
      const before = await stagingTables();
      const batch = trickyBatch();
      await table.upsert(batch);
      expect(await stagingTables()).toBe(before);
      const mixed = [...batch.slice(0, 3), ...trickyBatch()]; // three ids the table holds, the rest new
      await table.upsert(mixed);
      expect(await stagingTables()).toBe(isPglite ? 0 : before + 1);
      expect(await table.count()).toBe(batch.length + mixed.length - 3);
      await expectStoredExactly(table, [...batch.slice(3), ...mixed]);
    } finally {
      await client.end();
    }
  });

  it('re-writing a batch is idempotent, and a changed batch replaces payloads and vectors', async () => {
    const table = await freshTable();
    const batch = trickyBatch();
    await table.upsert(batch);
    await table.upsert(batch);
    expect(await table.count()).toBe(batch.length);
    await expectStoredExactly(table, batch);

    const changed = batch.map((p, i) => ({ id: p.id, vector: float32Vector(), payload: { ...p.payload, revision: i, content: `${String(p.payload.content)}\n(edited)` } }));
    await table.upsert(changed);
    expect(await table.count()).toBe(batch.length);
    await expectStoredExactly(table, changed);
  });

  it('batches written concurrently over several sessions all land, each exactly once', async () => {
    const table = await freshTable();
    const batches = Array.from({ length: 6 }, () => Array.from({ length: 200 }, (_, i) => ({ id: pointId(), vector: float32Vector(), payload: { content: `memory ${i}\t"${i}"\\`, metadata: { user_id: `u${i % 3}` } } })));
    await Promise.all(batches.map((batch) => table.upsert(batch)));
    await Promise.all(batches.map((batch) => table.upsert(batch))); // the same sessions again, staging reused
    expect(await table.count()).toBe(6 * 200);
    expect(await table.countsMatching('metadata.user_id', ['u0', 'nobody'])).toEqual(new Map([['u0', 6 * 67]]));
    await expectStoredExactly(table, batches.flat());
  });

  it('a refused point fails the batch as ContentRejected naming only that id, never its content; the session writes the next batch exactly', async () => {
    const table = await freshTable();
    const batch = trickyBatch();
    const refused = { id: pointId(), vector: float32Vector(), payload: { content: 'secret memory with a NUL \u0000 inside' } };
    const err = await rejection(table.upsert([...batch.slice(0, 4), refused, ...batch.slice(4)]));
    expect(err.type).toBe('ContentRejected');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(refused.id);
    for (const p of batch) expect(err.message).not.toContain(p.id);
    expect(err.message).not.toContain('secret memory');

    // Naming writes the acceptable points one by one (idempotent); the refused one is absent.
    expect(await table.count()).toBe(batch.length);
    expect(await table.retrieve([refused.id])).toEqual([]);
    // Nothing of the failed batch lingers in the sessions' staging tables.
    const next = trickyBatch();
    await table.upsert(next);
    expect(await table.count()).toBe(batch.length + next.length);
    await expectStoredExactly(table, [...batch, ...next]);
  });

  it('a vector of the wrong size, a non-finite value and an unreadable id are refused as ContentRejected naming the point', async () => {
    const table = await freshTable();
    const good = trickyBatch().slice(0, 2);
    const shortVector = { id: pointId(), vector: float32Vector().slice(0, 3), payload: { content: 'short' } };
    const infinite = { id: pointId(), vector: float32Vector().map((v, i) => (i === 7 ? Infinity : v)), payload: { content: 'inf' } };
    const badId = { id: 'not-a-uuid', vector: float32Vector(), payload: { content: 'bad id' } };
    for (const refused of [shortVector, infinite, badId]) {
      const err = await rejection(table.upsert([...good, refused]));
      expect(err.type).toBe('ContentRejected');
      expect(err.message).toContain(`refused point(s): ${refused.id}.`);
    }
    expect(await table.count()).toBe(good.length);
    await expectStoredExactly(table, good);
  });

  it('ids PostgreSQL reads in other forms than the canonical one are stored as before', async () => {
    const table = await freshTable();
    const forms = ['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a0eebc999c0b4ef8bb6d6bb9bd380a12', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13}'];
    const vector = float32Vector();
    await table.upsert(forms.map((id, i) => ({ id, vector, payload: { content: `form ${i}` } })));
    const stored = await table.retrieve(['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13']);
    expect(stored.map((p) => p.payload.content).sort()).toEqual(['form 0', 'form 1', 'form 2']);
  });

  it("a source's digest of each point equals the one PostgreSQL makes of what it stored, but where jsonb prints a number otherwise; a digest-driven pass then reads only that point whole", async () => {
    const table = await freshTable();
    const batch = trickyBatch();
    await table.upsert(batch);
    const fromTable = new Map<string, string>();
    for await (const page of table.streamDigestsInIdRange({ index: 0, from: null, to: null }, 4)) for (const p of page) fromTable.set(p.id, p.digest);
    const fromSource = batch.map((p) => ({ id: p.id, digest: storedDigest(p.payload, new Uint8Array(float32Bits(p.vector))) }));
    const differing = fromSource.filter((p) => fromTable.get(p.id) !== p.digest).map((p) => batch.find((b) => b.id === p.id)!.payload.content);
    // 1e21, 5e-324 and 1.797…e308 are exponents to JavaScript and long decimals to jsonb.
    expect(differing).toEqual(isPglite ? expect.arrayContaining(['numbers']) : ['numbers']);
    // A changed payload or vector changes the digest.
    const [first] = batch;
    expect(storedDigest({ ...first.payload, content: 'other' }, new Uint8Array(float32Bits(first.vector)))).not.toBe(fromTable.get(first.id));
    expect(storedDigest(first.payload, new Uint8Array(float32Bits([...first.vector.slice(0, -1), 0.5])))).not.toBe(fromTable.get(first.id));

    const readWhole: string[] = [];
    const result = await compareEveryPoint(
      (async function* () { yield [...fromSource].sort((a, b) => compareIds(a.id, b.id)); })(),
      table.streamDigestsInIdRange({ index: 0, from: null, to: null }, 4),
      {
        vectorsCopied: true,
        writtenSince: () => false,
        whole: {
          source: (p) => (readWhole.push(p.id), batch.find((b) => b.id === p.id)),
          target: async (p) => (await table.retrieve([p.id]))[0],
        },
      },
      () => {},
    );
    expect(result).toMatchObject({ compared: batch.length, equal: batch.length, missing: 0, extra: 0, different: 0 });
    expect(readWhole.length).toBe(differing.length);
  });
});

