/**
 * A mem0 service that never stops writing: every `everyMs` one add, update or
 * delete through the name its clients use (an alias, so it follows cutover and
 * rollback as real clients do). It keeps the state the live store must hold
 * afterwards, so a test can check that no write was lost.
 */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { payloadFingerprint, sameJson } from '../../activities/compare';
import type { MemoryPoint } from '../../activities/stores/contract';
import { QdrantCollection } from '../../activities/stores/qdrant';
import { mem0Memory } from '../../scripts/generate-mem0-collection';
import { seededRandom } from '../../scripts/seeded-random';

export type WriteKind = 'add' | 'update' | 'delete';
/** Adds outnumber deletes, as in a service that grows. */
const CYCLE: WriteKind[] = ['add', 'update', 'add', 'delete', 'update'];
/** Added memories take dataset indexes from here on, so their ids never collide with the dataset's. */
const FIRST_ADDED_INDEX = 1_000_000;

export interface Mem0Writer {
  /** Writes done so far, by kind. */
  counts(): Record<WriteKind, number>;
  /** Every data text the writer wrote: memory contents that must never show up in history. */
  texts(): string[];
  /** Stops after the write in flight and returns id → payload of what the store must hold. */
  stop(): Promise<Map<string, Record<string, unknown>>>;
}

export function startMem0Writer(
  url: string,
  name: string,
  initial: Map<string, MemoryPoint>,
  options: { dimensions: number; everyMs?: number; seed?: number; spare?: Set<string> },
): Mem0Writer {
  const { dimensions, everyMs = 150, seed = 11, spare = new Set<string>() } = options;
  const store = new QdrantCollection(url, name);
  const expected = new Map([...initial].map(([id, p]) => [id, p.payload]));
  const counts: Record<WriteKind, number> = { add: 0, update: 0, delete: 0 };
  const texts: string[] = [];
  const next = seededRandom(seed);
  let stopping = false;
  let failure: unknown = null;

  const pickExisting = () => {
    const ids = [...expected.keys()].filter((id) => !spare.has(id));
    return ids[Math.floor(next() * ids.length)];
  };

  const writeOnce = async (kind: WriteKind) => {
    if (kind === 'add') {
      const point = mem0Memory(FIRST_ADDED_INDEX + counts.add, { seed, dimensions });
      await store.upsert([point]);
      expected.set(point.id, point.payload);
      texts.push(point.payload.data as string);
    } else if (kind === 'update') {
      const id = pickExisting();
      const data = `${expected.get(id)!.data} (edited by the live writer, ${counts.update})`;
      const payload = { ...expected.get(id)!, data, hash: createHash('md5').update(data).digest('hex'), updated_at: new Date().toISOString() };
      await store.upsert([{ id, vector: Array.from({ length: dimensions }, () => next() * 2 - 1), payload }]);
      expected.set(id, payload);
      texts.push(data);
    } else {
      const id = pickExisting();
      await store.deletePoints([id]);
      expected.delete(id);
    }
    counts[kind]++;
  };

  const running = (async () => {
    for (let i = 0; !stopping; i++) {
      await writeOnce(CYCLE[i % CYCLE.length]);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })().catch((err) => (failure = err));

  return {
    counts: () => ({ ...counts }),
    texts: () => [...texts],
    async stop() {
      stopping = true;
      await running;
      if (failure) throw failure;
      return expected;
    },
  };
}

/** The collection (or alias) holds exactly the expected ids, each with the expected payload (fingerprint, confirmed as JSON numbers). */
export async function expectHolds(url: string, name: string, expected: Map<string, Record<string, unknown>>): Promise<void> {
  const actual = new Map<string, Record<string, unknown>>();
  const store = new QdrantCollection(url, name);
  let cursor: string | null = null;
  do {
    const page = await store.readPage(cursor, 1_000);
    page.points.forEach((p) => actual.set(p.id, p.payload));
    cursor = page.next;
  } while (cursor !== null);
  expect({ missing: [...expected.keys()].filter((id) => !actual.has(id)), unexpected: [...actual.keys()].filter((id) => !expected.has(id)) }).toEqual({
    missing: [],
    unexpected: [],
  });
  const differing = [...expected].filter(([id, payload]) => payloadFingerprint(payload) !== payloadFingerprint(actual.get(id)) && !sameJson(payload, actual.get(id)));
  expect(differing.map(([id]) => id)).toEqual([]);
}
