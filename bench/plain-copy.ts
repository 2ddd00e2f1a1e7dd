/**
 * The baseline: the same SQLite-vec → pgvector copy as a plain script, with
 * no Temporal, no heartbeats, no validation — what an operator would write
 * by hand. Same reads (by primary key), same batch INSERT … ON CONFLICT.
 *
 *   node --import tsx bench/plain-copy.ts SOURCE.db POSTGRES_URL TABLE BATCH
 */
import { McpMemorySource, inspectMcpStore, openReadOnly } from '../activities/stores/sqlite';
import { PgvectorTable } from '../activities/stores/postgres';

async function main() {
  const [sourcePath, url, table, batch = '500'] = process.argv.slice(2);
  const db = openReadOnly(sourcePath);
  const source = new McpMemorySource(db, false);
  const target = new PgvectorTable({ url, schema: 'public', table });
  await target.create(inspectMcpStore(db).dimensions!);
  const started = Date.now();
  const cpuAtStart = process.cpuUsage();
  let cursor: string | null = null;
  let points = 0;
  do {
    const page = await source.readPage(cursor, Number(batch));
    await target.upsert(page.points);
    points += page.points.length;
    cursor = page.next;
  } while (cursor !== null);
  const seconds = (Date.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  await target.close();
  db.close();
  console.log(JSON.stringify({ points, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
