/**
 * Writes a mem0 v1-shaped Qdrant collection and its `<name>_entities`
 * companion: uuid4 point ids, one unnamed dense vector, flat payloads
 * (data, hash = md5(data), ISO created_at/updated_at, user_id and the other
 * scope ids, role, caller metadata at top level), several users, some
 * agent-only memories, and on every fourth memory a float that needs 17
 * significant digits (which Qdrant 1.19 may return as the neighbouring
 * double). Deterministic for a given seed. Used by the tests and the benchmark.
 *
 *   node --import tsx scripts/generate-mem0-collection.ts QDRANT_URL [collection] [count] [dimensions]
 */
import { createHash } from 'node:crypto';
import type { MemoryPoint } from '../activities/stores/contract';
import { QdrantCollection } from '../activities/stores/qdrant';
import { seededRandom } from './seeded-random';

export interface Mem0DatasetOptions {
  collection: string;
  count: number;
  dimensions?: number;
  users?: string[];
  /** Entities per user in `<collection>_entities`; 0 for no entities collection. */
  entitiesPerUser?: number;
  seed?: number;
  batchSize?: number;
}

export const MEM0_USERS = ['alice', 'bob', 'carol', 'dave', 'erin'];
const AGENT_ONLY_EVERY = 50;
const TOPICS = ['oat milk', 'deploy friday', 'postgres vacuum', 'alpine hiking', 'tax forms', 'rust lifetimes', 'sourdough starter', 'standup notes'];
const VERBS = ['prefers', 'asked about', 'is worried about', 'wants to learn', 'mentioned'];
const T0 = Date.UTC(2024, 0, 1);

function uuid4(next: () => number): string {
  const bytes = Array.from({ length: 16 }, () => Math.floor(next() * 256));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function embedding(next: () => number, dimensions: number): number[] {
  return Array.from({ length: dimensions }, () => next() * 2 - 1);
}

const isoAt = (ms: number) => new Date(ms).toISOString().replace('Z', '+00:00');

/** Caller metadata as epoch seconds with sub-microsecond digits, e.g. 1704067200.8524659: a 17-significant-digit float. */
const seenAt = (seed: number, i: number) => (T0 + i * 60_000) / 1000 + seededRandom(seed * 31 + i)();

/** The i-th memory of a dataset (version > 0 gives the same id with new text, as a mem0 update does). */
export function mem0Memory(i: number, options: { seed?: number; dimensions?: number; users?: string[]; version?: number } = {}): MemoryPoint {
  const { seed = 7, dimensions = 64, users = MEM0_USERS, version = 0 } = options;
  const next = seededRandom(seed * 1_000_003 + i);
  const id = uuid4(next);
  const user = users[i % users.length];
  const agentOnly = i % AGENT_ONLY_EVERY === AGENT_ONLY_EVERY - 1;
  const data = `${agentOnly ? 'The agent' : user} ${VERBS[i % VERBS.length]} ${TOPICS[(i >> 2) % TOPICS.length]} (note ${i.toString(36)}${version ? ` rev ${version}` : ''})`;
  const payload: Record<string, unknown> = {
    data,
    hash: createHash('md5').update(data).digest('hex'),
    created_at: isoAt(T0 + i * 60_000),
    updated_at: isoAt(T0 + i * 60_000 + version * 3_600_000),
    ...(agentOnly ? {} : { user_id: user }),
    ...(i % 3 === 0 || agentOnly ? { agent_id: 'support-bot' } : {}),
    ...(i % 7 === 0 ? { run_id: `run-${i % 11}` } : {}),
    ...(i % 5 === 0 ? { actor_id: user } : {}),
    role: 'user',
    category: TOPICS[i % TOPICS.length].split(' ')[0],
    ...(i % 4 === 0 ? { last_seen_epoch: seenAt(seed, i) } : {}),
  };
  return { id, vector: embedding(next, dimensions), payload };
}

function mem0Entity(user: string, u: number, i: number, seed: number, dimensions: number): MemoryPoint {
  const next = seededRandom(seed * 7_919 + u * 1_000_003 + i);
  const name = `${user} ${TOPICS[i % TOPICS.length]} ${i}`;
  return {
    id: uuid4(next),
    vector: embedding(next, dimensions),
    payload: {
      data: name,
      entity_type: ['person', 'food', 'place', 'project'][i % 4],
      user_id: user,
      created_at: isoAt(T0 + i * 1_000),
      updated_at: isoAt(T0 + i * 1_000),
      memory_ids: [`m-${i}`, `m-${i + 1}`],
    },
  };
}

async function writeAll(collection: QdrantCollection, points: Iterable<MemoryPoint>, batchSize: number): Promise<number> {
  let batch: MemoryPoint[] = [];
  let written = 0;
  for (const point of points) {
    batch.push(point);
    if (batch.length === batchSize) {
      await collection.upsert(batch);
      written += batch.length;
      batch = [];
    }
  }
  await collection.upsert(batch);
  return written + batch.length;
}

/** Creates both collections (Cosine, unnamed dense vector, as mem0 v1 does) and fills them. */
export async function generateMem0Collections(url: string, options: Mem0DatasetOptions): Promise<{ memories: number; entities: number }> {
  const { collection, count, dimensions = 64, users = MEM0_USERS, entitiesPerUser = 20, seed = 7, batchSize = 500 } = options;
  const memories = new QdrantCollection(url, collection);
  await memories.create(dimensions);
  const memoryPoints = function* () {
    for (let i = 0; i < count; i++) yield mem0Memory(i, { seed, dimensions, users });
  };
  const written = await writeAll(memories, memoryPoints(), batchSize);
  if (entitiesPerUser === 0) return { memories: written, entities: 0 };

  const entities = new QdrantCollection(url, `${collection}_entities`);
  await entities.create(dimensions);
  const entityPoints = function* () {
    for (const [u, user] of users.entries()) for (let i = 0; i < entitiesPerUser; i++) yield mem0Entity(user, u, i, seed, dimensions);
  };
  return { memories: written, entities: await writeAll(entities, entityPoints(), batchSize) };
}

if (require.main === module) {
  const [url, collection = 'mem0', count = '10000', dimensions = '768'] = process.argv.slice(2);
  if (!url) {
    console.error('usage: generate-mem0-collection.ts QDRANT_URL [collection] [count] [dimensions]');
    process.exit(2);
  }
  generateMem0Collections(url, { collection, count: Number(count), dimensions: Number(dimensions) }).then(
    (written) => console.log(`wrote ${written.memories} memories to ${collection} and ${written.entities} entities to ${collection}_entities`),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
