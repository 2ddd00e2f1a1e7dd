/**
 * Qdrant's write path as memshift uses it: REST batch upserts (`wait: true`)
 * of 256 points × 384-dim through @qdrant/js-client-rest (QdrantCollection),
 * one batch at a time and two in flight, against the test double in its own
 * process, or the real server at QDRANT_URL. Prints points/s and the bytes a
 * batch puts on the wire as JSON. (No gRPC run: the double has no gRPC
 * surface and @qdrant/js-client-grpc is not a dependency; see README.)
 *
 *   node --import tsx bench/qdrant-rest-upsert.ts [--points 51200]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { MemoryPoint } from '../activities/stores/contract';
import { QdrantCollection } from '../activities/stores/qdrant';
import { seededRandom } from '../scripts/seeded-random';

const BATCH = 256;
const DIMENSIONS = 384;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

async function startQdrant(): Promise<{ url: string; stop(): void }> {
  if (process.env.QDRANT_URL) return { url: process.env.QDRANT_URL, stop() {} };
  const double = spawn(process.execPath, ['--max-old-space-size=8192', '--import', 'tsx', path.resolve(__dirname, '../test/qdrant-double/server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for await (const line of createInterface({ input: double.stdout! })) {
    const match = /^QDRANT_DOUBLE_URL=(\S+)$/.exec(line);
    if (match) return { url: match[1], stop: () => double.kill('SIGTERM') };
  }
  throw new Error('the Qdrant double exited before printing its URL');
}

/** mcp-memory-service-shaped points (float32 vectors, a payload of the usual size). */
function batches(total: number, seed: number): MemoryPoint[][] {
  const random = seededRandom(seed);
  const hex = (n: number) => n.toString(16).padStart(12, '0');
  return Array.from({ length: Math.ceil(total / BATCH) }, (_, b) =>
    Array.from({ length: Math.min(BATCH, total - b * BATCH) }, (_, i) => {
      const n = b * BATCH + i;
      return {
        id: `00000000-0000-4000-8000-${hex(n + seed * 1e9)}`,
        vector: Array.from({ length: DIMENSIONS }, () => Math.fround(random() * 2 - 1)),
        payload: { content: `memory ${n} about deploys and coffee`, tags: ['bench'], memory_type: 'note', metadata: { user_id: `u${n % 6}` }, created_at: 1700000000.8524659 + n },
      };
    }),
  );
}

async function upsertAll(target: QdrantCollection, work: MemoryPoint[][], inFlight: number): Promise<number> {
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < work.length) await target.upsert(work[next++]);
    }),
  );
  return (Date.now() - started) / 1000;
}

async function main() {
  const total = Number(option('points', '51200'));
  const qdrant = await startQdrant();
  try {
    const rows: string[] = [];
    for (const [seed, inFlight] of [[1, 1], [2, 2]] as const) {
      const work = batches(total, seed);
      const target = new QdrantCollection(qdrant.url, `rest_upsert_${inFlight}_${Date.now().toString(36)}`);
      await target.create(DIMENSIONS);
      const seconds = await upsertAll(target, work, inFlight);
      const stored = await target.count();
      if (stored !== total) throw new Error(`expected ${total} points, the collection holds ${stored}`);
      const wireKb = Math.round(Buffer.byteLength(JSON.stringify({ points: work[0] })) / 1024);
      // What a binary protocol would save the client: formatting the batches as JSON, alone.
      const encodeStarted = Date.now();
      for (const batch of work) JSON.stringify({ points: batch });
      const encodeShare = Math.round((100 * (Date.now() - encodeStarted)) / 1000 / seconds);
      rows.push(`| REST upsert, ${BATCH} × ${DIMENSIONS}-dim, ${inFlight} in flight | ${Math.round(total / seconds)} | ${seconds.toFixed(1)} | ${wireKb} | ${encodeShare}% |`);
      await target.drop();
    }
    console.log(`\n${total} points into ${process.env.QDRANT_URL ? 'Qdrant' : 'the Qdrant test double'}, ${new Date().toISOString().slice(0, 16)}Z`);
    console.log('| write path | points/s | s | JSON KB a batch | client JSON encoding, share of s |');
    console.log('|---|---:|---:|---:|---:|');
    for (const row of rows) console.log(row);
  } finally {
    qdrant.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
