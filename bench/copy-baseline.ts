/**
 * The machine's limit: the same rows and payloads as the copy (read by the
 * same source adapter) streamed into the same table shape with one
 * `COPY … FROM STDIN (FORMAT binary)` over one connection — no staging, no
 * ON CONFLICT, no per-batch commit, no read-back. Reading the next page
 * overlaps PostgreSQL ingesting the last one, so both cores work.
 *
 *   node --import tsx bench/copy-baseline.ts SOURCE.db POSTGRES_URL TABLE BATCH
 */
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { MemoryPoint } from '../activities/stores/contract';
import { McpMemorySource, inspectMcpStore, openReadOnly } from '../activities/stores/sqlite';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** COPY's binary tuples: uuid as 16 bytes, pgvector as dimensions + float4s (big-endian), jsonb as version 1 + text. */
function binaryTuples(points: MemoryPoint[]): Buffer {
  const payloads = points.map((p) => JSON.stringify(p.payload));
  const payloadLengths = payloads.map((json) => Buffer.byteLength(json));
  const dimensions = points[0]?.vector.length ?? 0;
  const out = Buffer.allocUnsafe(points.length * (2 + 4 + 16 + 4 + 4 + 4 * dimensions + 4 + 1) + payloadLengths.reduce((a, b) => a + b, 0));
  const floats = new Float32Array(dimensions);
  const floatBytes = Buffer.from(floats.buffer);
  let at = 0;
  for (let i = 0; i < points.length; i++) {
    at = out.writeInt16BE(3, at);
    at = out.writeInt32BE(16, at);
    at += out.write(points[i].id.replace(/-/g, ''), at, 'hex');
    at = out.writeInt32BE(4 + 4 * dimensions, at);
    at = out.writeUInt16BE(dimensions, at);
    at = out.writeInt16BE(0, at);
    floats.set(points[i].vector);
    at += floatBytes.swap32().copy(out, at);
    at = out.writeInt32BE(1 + payloadLengths[i], at);
    at = out.writeUInt8(1, at);
    at += out.write(payloads[i], at, 'utf8');
  }
  return out;
}

async function main() {
  const [sourcePath, url, table, batch = '500'] = process.argv.slice(2);
  const db = openReadOnly(sourcePath);
  const source = new McpMemorySource(db, false);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // The table PgvectorTable.create makes: the primary key index is maintained during the load, as in the copy.
  await client.query(`CREATE TABLE "${table}" (id uuid PRIMARY KEY, embedding vector(${inspectMcpStore(db).dimensions}) NOT NULL, payload jsonb NOT NULL)`);
  const started = Date.now();
  const cpuAtStart = process.cpuUsage();
  const copy = client.query(copyFrom(`COPY "${table}" (id, embedding, payload) FROM STDIN (FORMAT binary)`));
  const done = new Promise((resolve, reject) => copy.once('finish', resolve).once('error', reject));
  copy.write(Buffer.concat([SIGNATURE, Buffer.alloc(8)])); // flags and header extension length: 0
  let cursor: string | null = null;
  let points = 0;
  do {
    const page = await source.readPage(cursor, Number(batch));
    if (!copy.write(binaryTuples(page.points))) await once(copy, 'drain');
    points += page.points.length;
    cursor = page.next;
  } while (cursor !== null);
  copy.end(Buffer.from([0xff, 0xff])); // trailer
  await done;
  const seconds = (Date.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  await client.end();
  db.close();
  console.log(JSON.stringify({ points, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
