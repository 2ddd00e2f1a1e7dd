/**
 * Plays mcp-memory-service for live-writer tests, in a process of its own:
 * it keeps inserting, updating and deleting memories, in the SQLite store
 * (WAL mode, as the service runs it) while the live-backend file names no
 * migration, and in the target once a cutover names it. When a rollback
 * points the file back, it exits.
 *
 *   node --import tsx test/support/mcp-writer.ts '<WriterConfig JSON>'
 *
 * It appends `<where> <op> <point id>` lines to `log` (ids only), so a test
 * knows which target points the "service" wrote after cutover. A line is
 * written before its write: a test that reads the target, then the log,
 * never sees a write the log does not name yet.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { openTarget } from '../../activities/targets';
import { pointIdForContentHash } from '../../activities/stores/sqlite';
import type { MemoryPoint } from '../../activities/stores/contract';
import type { TargetSpec } from '../../workflows/plan-schemas';
import { insertMemories, openWritableStore } from '../../scripts/generate-mcp-store';
import { seededRandom } from '../../scripts/seeded-random';

export interface WriterConfig {
  source: string;
  liveFile: string;
  target: TargetSpec;
  log: string;
  stopFile: string;
  dimensions: number;
  /** First number for memories this writer inserts (beyond the generated store's). */
  firstNew: number;
  pauseMs: number;
}

const config = JSON.parse(process.argv[2]) as WriterConfig;
const random = seededRandom(7);
const pick = <T>(items: T[]): T | undefined => items[Math.floor(random() * items.length)];
const log = (line: string) => appendFileSync(config.log, `${line}\n`);
const now = () => Date.now() / 1000;
let next = config.firstNew;

function liveIsTarget(): boolean {
  if (!existsSync(config.liveFile)) return false;
  try {
    return typeof JSON.parse(readFileSync(config.liveFile, 'utf8')).workflowId === 'string';
  } catch {
    return false; // caught mid-rename: read again next round
  }
}

function writeSource(db: Database.Database): void {
  const op = random();
  const ids = () => (db.prepare('SELECT id FROM memories WHERE deleted_at IS NULL ORDER BY random() LIMIT 1').pluck().all() as number[]);
  if (op < 0.45) {
    insertMemories(db, next++, { count: 1, dimensions: config.dimensions, seed: 99 });
    return;
  }
  const id = pick(ids());
  if (id === undefined) return;
  const t = now();
  if (op < 0.65) {
    db.prepare("UPDATE memories SET tags = tags || ',edited', metadata = json_set(metadata, '$.edited', ?), updated_at = ?, updated_at_iso = ? WHERE id = ?")
      .run(t, t, new Date(t * 1000).toISOString(), id);
  } else if (op < 0.75) {
    // A content change changes the content hash, so the memory gets a new point id.
    const content = `Rewritten memory ${id} at ${t}`;
    db.prepare('UPDATE memories SET content = ?, content_hash = ?, updated_at = ? WHERE id = ?').run(content, sha256(content), t, id);
  } else if (op < 0.9) {
    db.transaction(() => {
      db.prepare('DELETE FROM memories WHERE id = ?').run(id);
      db.prepare('DELETE FROM memory_embeddings WHERE rowid = ?').run(BigInt(id));
    })();
  } else {
    db.prepare('UPDATE memories SET deleted_at = ?, updated_at = ? WHERE id = ?').run(t, t, id);
  }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function newPoint(): MemoryPoint {
  const t = now();
  const user = pick(['alice', 'bob', 'carol', 'dave'])!;
  const content = `Memory ${next++} written to the target for ${user}`;
  const hash = sha256(content);
  return {
    id: pointIdForContentHash(hash),
    vector: Array.from(Float32Array.from({ length: config.dimensions }, () => random() * 2 - 1)),
    payload: {
      content,
      content_hash: hash,
      tags: ['target', `user:${user}`],
      memory_type: 'note',
      metadata: { user_id: user, source: 'service' },
      created_at: t,
      updated_at: t,
      created_at_iso: new Date(t * 1000).toISOString(),
      updated_at_iso: new Date(t * 1000).toISOString(),
    },
  };
}

async function writeTarget(target: ReturnType<typeof openTarget>, known: string[]): Promise<void> {
  const op = random();
  if (op < 0.5) {
    const point = newPoint();
    log(`target created ${point.id}`);
    await target.upsert([point]);
    known.push(point.id);
    return;
  }
  const id = pick(known);
  if (!id) return;
  const [point] = await target.retrieve([id]);
  if (!point) return;
  if (op < 0.8) {
    const t = now();
    point.payload = { ...point.payload, tags: [...(point.payload.tags as string[]), 'edited-in-target'], updated_at: t };
    log(`target updated ${id}`);
    await target.upsert([point]);
  } else {
    log(`target deleted ${id}`);
    await target.deletePoints([id]);
    known.splice(known.indexOf(id), 1);
  }
}

async function main(): Promise<void> {
  const db = openWritableStore(config.source, config.dimensions);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  const target = openTarget(config.target);
  let known: string[] | null = null;
  const sleep = () => new Promise((r) => setTimeout(r, config.pauseMs));
  while (!existsSync(config.stopFile)) {
    if (!liveIsTarget()) {
      if (known) break; // switched back: the rollback has taken over
      writeSource(db);
    } else {
      known ??= (await target.readPage(null, 200)).points.map((p) => p.id);
      await writeTarget(target, known);
    }
    await sleep();
  }
  db.close();
  await target.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
