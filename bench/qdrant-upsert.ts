/**
 * Qdrant's write and read paths over REST and gRPC, against one test double
 * process (REST and gRPC on the same collections), or a real Qdrant at
 * QDRANT_URL (REST) and QDRANT_GRPC_URL (gRPC; default: QDRANT_URL's host,
 * port 6334).
 *
 * Writes: batches of 256 × 384-dim points (`wait: true`), one batch in
 * flight and two. REST is memshift's QdrantCollection adapter
 * (@qdrant/js-client-rest, JSON); gRPC is @qdrant/js-client-grpc's
 * `api('points').upsert` (protobuf, vectors as 4-byte floats), once with the
 * client's default gzip compression and once with `compression: false`. Each
 * gRPC batch is converted from memshift's MemoryPoint inside the timed loop,
 * as an adapter would. Reads: a scroll of all points with payload and
 * vectors, 256 a page, into MemoryPoints. Every path is warmed up on 2,048
 * points first, unmeasured.
 *
 * Prints points/s, the bytes of one batch (or page) on the wire, and the CPU
 * seconds the client process and the double spent on each run (the double's
 * from /proc/<pid>/stat).
 *
 *   node --import tsx bench/qdrant-upsert.ts [--points 51200]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import type { QdrantClient as GrpcClient, RetrievedPoint } from '@qdrant/js-client-grpc' with { 'resolution-mode': 'import' };
import type { MemoryPoint } from '../activities/stores/contract';
import { QdrantCollection } from '../activities/stores/qdrant';
import { seededRandom } from '../scripts/seeded-random';
import { payloadFromProto, payloadToProto } from '../test/qdrant-double/grpc';
import { option } from './option';
import { cpuSecondsOf } from './proc';

type GrpcModule = typeof import('@qdrant/js-client-grpc', { with: { 'resolution-mode': 'import' } });
const { QdrantClient: GrpcQdrantClient, UpsertPointsSchema, ScrollResponseSchema } = require('@qdrant/js-client-grpc') as GrpcModule;

const BATCH = 256;
const DIMENSIONS = 384;

interface Qdrant {
  url: string;
  grpcUrl: string;
  /** The double's pid, to read its CPU time; absent for a real Qdrant. */
  pid?: number;
  stop(): void;
}

async function startQdrant(): Promise<Qdrant> {
  if (process.env.QDRANT_URL) {
    const url = process.env.QDRANT_URL;
    const grpcUrl = process.env.QDRANT_GRPC_URL ?? Object.assign(new URL(url), { port: '6334' }).origin;
    return { url, grpcUrl, stop() {} };
  }
  const double = spawn(process.execPath, ['--max-old-space-size=8192', '--import', 'tsx', path.resolve(__dirname, '../test/qdrant-double/server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let url: string | undefined;
  for await (const line of createInterface({ input: double.stdout! })) {
    const match = /^QDRANT_DOUBLE_(GRPC_)?URL=(\S+)$/.exec(line);
    if (match && !match[1]) url = match[2];
    if (match && match[1] && url) return { url, grpcUrl: match[2], pid: double.pid, stop: () => double.kill('SIGTERM') };
  }
  throw new Error('the Qdrant double exited before printing its URLs');
}

function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
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

// ---- MemoryPoint ⇄ gRPC, as a gRPC adapter would convert them ----

type UpsertInit = MessageInitShape<GrpcModule['UpsertPointsSchema']>;

function upsertRequest(collectionName: string, points: MemoryPoint[]): UpsertInit {
  return {
    collectionName,
    wait: true,
    points: points.map((point) => ({
      id: { pointIdOptions: { case: 'uuid', value: point.id } },
      vectors: { vectorsOptions: { case: 'vector', value: { vector: { case: 'dense', value: { data: point.vector } } } } },
      payload: payloadToProto(point.payload),
    })),
  };
}

function fromRetrieved(point: RetrievedPoint): MemoryPoint {
  const id = point.id!.pointIdOptions;
  const single = point.vectors?.vectorsOptions.case === 'vector' ? point.vectors.vectorsOptions.value.vector : undefined;
  if (single?.case !== 'dense') throw new Error(`point ${String(id.value)} has no unnamed dense vector`);
  return { id: String(id.value), vector: single.value.data, payload: payloadFromProto(point.payload) };
}

// ---- the runs ----

interface Run {
  label: string;
  inFlight: number;
  points: number;
  seconds: number;
  wireKb: number;
  clientCpu: number;
  doubleCpu: number | null;
}

async function measure(qdrant: Qdrant, label: string, inFlight: number, points: number, wireBytes: number, work: () => Promise<void>): Promise<Run> {
  const cpuBefore = ownCpuSeconds();
  const doubleBefore = qdrant.pid ? cpuSecondsOf(qdrant.pid) : 0;
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    label,
    inFlight,
    points,
    seconds,
    wireKb: Math.round(wireBytes / 1024),
    clientCpu: ownCpuSeconds() - cpuBefore,
    doubleCpu: qdrant.pid ? cpuSecondsOf(qdrant.pid) - doubleBefore : null,
  };
}

/** Runs `send` over all batches with `inFlight` of them outstanding at a time. */
async function inParallel(work: MemoryPoint[][], inFlight: number, send: (batch: MemoryPoint[]) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < work.length) await send(work[next++]);
    }),
  );
}

type Protocol = { kind: 'rest' } | { kind: 'grpc'; client: GrpcClient; gzip: boolean };

function protocolLabel(protocol: Protocol): string {
  if (protocol.kind === 'rest') return 'REST (JSON), QdrantCollection';
  return `gRPC, ${protocol.gzip ? 'gzip (client default)' : 'compression: false'}`;
}

/** A batch's request body as it goes on the wire (gRPC: the 5-byte frame header and the message, gzipped when on). */
function batchBytes(protocol: Protocol, collection: string, batch: MemoryPoint[]): number {
  if (protocol.kind === 'rest') return Buffer.byteLength(JSON.stringify({ points: batch }));
  const message = toBinary(UpsertPointsSchema, create(UpsertPointsSchema, upsertRequest(collection, batch)));
  return 5 + (protocol.gzip ? gzipSync(message).length : message.length);
}

async function writeRun(qdrant: Qdrant, protocol: Protocol, work: MemoryPoint[][], total: number, inFlight: number, name: string): Promise<Run> {
  const target = new QdrantCollection(qdrant.url, name);
  const wire = batchBytes(protocol, name, work[0]);
  const run = await measure(qdrant, `${protocolLabel(protocol)} upsert`, inFlight, total, wire, () =>
    protocol.kind === 'rest'
      ? inParallel(work, inFlight, (batch) => target.upsert(batch))
      : inParallel(work, inFlight, (batch) => protocol.client.api('points').upsert(upsertRequest(name, batch))),
  );
  const stored = await target.count();
  if (stored !== total) throw new Error(`expected ${total} points, ${name} holds ${stored}`);
  return run;
}

/** Scrolls the whole collection, 256 a page, into MemoryPoints; checks every point came back with its vector. */
async function readRun(qdrant: Qdrant, protocol: Protocol, total: number, name: string): Promise<Run> {
  let read = 0;
  let wire = 0;
  const check = (points: MemoryPoint[]) => {
    for (const point of points) if (point.vector.length !== DIMENSIONS) throw new Error(`point ${point.id} came back with ${point.vector.length} dimensions`);
    read += points.length;
  };
  if (protocol.kind === 'rest') {
    const response = await fetch(`${qdrant.url}/collections/${name}/points/scroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(process.env.QDRANT_API_KEY ? { 'api-key': process.env.QDRANT_API_KEY } : {}) },
      body: JSON.stringify({ limit: BATCH, with_payload: true, with_vector: true }),
    });
    wire = Buffer.byteLength(await response.text());
  }
  const run = await measure(qdrant, `${protocolLabel(protocol)} scroll`, 1, total, 0, async () => {
    if (protocol.kind === 'rest') {
      const source = new QdrantCollection(qdrant.url, name);
      let cursor: string | null = null;
      do {
        const page = await source.readPage(cursor, BATCH);
        check(page.points);
        cursor = page.next;
      } while (cursor !== null);
      return;
    }
    const points = protocol.client.api('points');
    let offset: RetrievedPoint['id'] | undefined;
    do {
      const page = await points.scroll({
        collectionName: name,
        limit: BATCH,
        offset,
        withPayload: { selectorOptions: { case: 'enable', value: true } },
        withVectors: { selectorOptions: { case: 'enable', value: true } },
      });
      if (wire === 0) {
        const message = toBinary(ScrollResponseSchema, page);
        wire = 5 + (protocol.gzip ? gzipSync(message).length : message.length);
      }
      check(page.result.map(fromRetrieved));
      offset = page.nextPageOffset;
    } while (offset !== undefined);
  });
  if (read !== total) throw new Error(`read ${read} points of ${total} from ${name}`);
  return { ...run, wireKb: Math.round(wire / 1024) };
}

async function main() {
  const total = Number(option('points', '51200'));
  const qdrant = await startQdrant();
  const apiKey = process.env.QDRANT_API_KEY;
  const grpcClient = (gzip: boolean) => new GrpcQdrantClient({ url: qdrant.grpcUrl, apiKey, compression: gzip });
  const protocols: Protocol[] = [{ kind: 'rest' }, { kind: 'grpc', client: grpcClient(true), gzip: true }, { kind: 'grpc', client: grpcClient(false), gzip: false }];
  const runs: Run[] = [];
  try {
    // Warm-up, unmeasured: the JIT of both processes on every path, so the first measured run is not also the first run.
    for (const protocol of protocols) {
      const name = `warmup_${protocol.kind}_${Date.now().toString(36)}`;
      const target = new QdrantCollection(qdrant.url, name);
      await target.create(DIMENSIONS);
      await writeRun(qdrant, protocol, batches(8 * BATCH, 99), 8 * BATCH, 2, name);
      await readRun(qdrant, protocol, 8 * BATCH, name);
      await target.drop();
    }
    let seed = 1;
    for (const protocol of protocols) {
      for (const inFlight of [1, 2]) {
        const name = `upsert_${protocol.kind}_${inFlight}_${Date.now().toString(36)}`;
        const target = new QdrantCollection(qdrant.url, name);
        await target.create(DIMENSIONS);
        const work = batches(total, seed++);
        runs.push(await writeRun(qdrant, protocol, work, total, inFlight, name));
        // The read pass once per protocol, over the collection the one-in-flight run just wrote.
        if (inFlight === 1) runs.push(await readRun(qdrant, protocol, total, name));
        await target.drop();
      }
    }
  } finally {
    qdrant.stop();
  }
  console.log(`\n${total} points, ${process.env.QDRANT_URL ? 'Qdrant' : 'the Qdrant test double (one process, REST and gRPC)'}, ${new Date().toISOString().slice(0, 16)}Z`);
  console.log('| path | in flight | points/s | s | KB a batch/page on the wire | client CPU s | double CPU s |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const run of runs) {
    const doubleCpu = run.doubleCpu === null ? 'n/a' : run.doubleCpu.toFixed(1);
    console.log(`| ${run.label} | ${run.inFlight} | ${Math.round(run.points / run.seconds)} | ${run.seconds.toFixed(1)} | ${run.wireKb} | ${run.clientCpu.toFixed(1)} | ${doubleCpu} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
