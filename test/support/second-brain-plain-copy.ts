/**
 * The plain script the Second Brain benchmark compares memshift with: the
 * same v3 schema, the same reads and the same batched inserts (memshift's own
 * adapters), one batch after another, no Temporal, no heartbeats, no checks.
 *
 *   node --import tsx test/support/second-brain-plain-copy.ts SOURCE_URL TARGET_URL BATCH
 * Prints {"memories":N,"copySeconds":C,"seconds":S}: the copy alone, and schema + copy + index.
 */
import os from 'node:os';
import pg from 'pg';
import { V2Columns, V2MemorySource, inspectV2 } from '../../activities/second-brain/v2-source';
import { userIdFor } from '../../activities/second-brain/v3-memory';
import { createVectorIndex, ivfflatLists, v3SchemaDdl } from '../../activities/second-brain/v3-schema';
import { V3MemoryTarget } from '../../activities/second-brain/v3-target';

const PROGRESS_EVERY = 10_000;

async function main(): Promise<void> {
  const [sourceUrl, targetUrl, batch] = process.argv.slice(2);
  const source = new pg.Pool({ connectionString: sourceUrl, max: 2 });
  const target = new pg.Pool({ connectionString: targetUrl, max: 2 });
  const started = Date.now();
  await target.query(v3SchemaDdl(1536));
  const owner = userIdFor('bench@example.com');
  await target.query(
    `INSERT INTO users (id, email, username, password_hash, role, is_active, is_verified, preferences, created_at, updated_at, memory_limit, storage_limit_mb, api_rate_limit)
     VALUES ($1, 'bench@example.com', 'bench', '!', 'user', true, false, '{}', now(), now(), 1000000, 10000, 1000)`,
    [owner],
  );
  const shape = await inspectV2(source, 'source');
  const reader = await V2MemorySource.open(source, new V2Columns(shape, 'UTC'), {
    layout: shape.layout,
    ownerOf: () => owner,
    tagsField: 'tags',
    untitled: 'Untitled memory',
    defaultMemoryType: 'semantic',
    embeddingModel: 'text-embedding-ada-002',
  });
  const writer = new V3MemoryTarget(target, owner);
  const copyStarted = Date.now();
  let cursor: string | null = null;
  let memories = 0;
  let lap = { at: copyStarted, memories: 0 };
  do {
    const page = await reader.readPage(cursor, Number(batch));
    await writer.upsert(page.points);
    memories += page.points.length;
    cursor = page.next;
    if (memories - lap.memories >= PROGRESS_EVERY) {
      // The rate per stretch, to stderr: a long run shows whether it slows as the tables grow.
      const now = Date.now();
      process.stderr.write(`plain script: ${memories} memories, ${Math.round((memories - lap.memories) / ((now - lap.at) / 1000))}/s over the last ${memories - lap.memories}, load ${os.loadavg()[0].toFixed(1)}\n`);
      lap = { at: now, memories };
    }
  } while (cursor !== null);
  const copySeconds = (Date.now() - copyStarted) / 1000;
  await createVectorIndex(target, ivfflatLists(memories), 1536);
  await source.end();
  await target.end();
  process.stdout.write(`${JSON.stringify({ memories, copySeconds, seconds: (Date.now() - started) / 1000 })}\n`);
}

void main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
