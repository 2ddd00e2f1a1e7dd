/**
 * What must never happen: bad input that touches data, or workflow history
 * that holds a credential or a memory. Real Temporal, real SQLite, Qdrant double.
 */
import type { Client } from '@temporalio/client';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTarget } from '../activities/targets';
import { openReadOnly } from '../activities/stores/sqlite';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { approveUpdate, rollbackSignal } from '../workflows/messages';
import { SqliteVecPlan, sqliteVecMigration, type SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { startQdrantDouble, type QdrantDouble } from './qdrant-double/server';
import { connectClient, failureMessage, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { uniqueName } from './support/postgres';

const API_KEY = 'qdrant-secret-key-7f3a9';
const EMBEDDINGS_KEY = 'sk-embeddings-secret-51c2';
let client: Client;
let qdrant: QdrantDouble;
let worker: { stop(): Promise<void> };
const taskQueue = uniqueQueue('guards');
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: 300, dimensions: 384 });
  // The worker reads credentials from its environment; plans never carry them.
  process.env.QDRANT_API_KEY = API_KEY;
  process.env.MEMSHIFT_EMBEDDINGS_API_KEY = EMBEDDINGS_KEY;
  qdrant = await startQdrantDouble({ apiKey: API_KEY });
  client = await connectClient();
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await qdrant?.stop();
});

const plan = (overrides: Partial<SqliteVecPlanInput> = {}): SqliteVecPlanInput => ({
  source: { path: sourcePath },
  target: { kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') },
  cutover: { file: path.join(dir, 'live.json') },
  ...overrides,
});

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function failureOf(input: unknown): Promise<string> {
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('bad'), args: [input as SqliteVecPlanInput] });
  return failureMessage(handle);
}

async function collectionExists(name: string): Promise<boolean> {
  const target = openTarget({ kind: 'qdrant', url: qdrant.url, collection: name });
  try {
    return (await target.describe()).exists;
  } finally {
    await target.close();
  }
}

describe('bad input fails fast with a message a person can act on, and touches nothing', () => {
  const untouched = async (input: SqliteVecPlanInput) => {
    expect(await collectionExists((input.target as { collection: string }).collection)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.bak'))).toEqual([]);
    expect(existsSync(path.join(dir, 'live.json'))).toBe(false);
  };

  it('missing source file', async () => {
    const input = plan({ source: { path: path.join(dir, 'nope.db') } });
    expect(await failureOf(input)).toMatch(/Source database not found: .*nope\.db\. Check source\.path\./);
    await untouched(input);
  });

  it('not an mcp-memory-service database', async () => {
    const other = path.join(dir, 'other.db');
    new Database(other).exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)').close();
    const input = plan({ source: { path: other } });
    expect(await failureOf(input)).toMatch(/other\.db is not an mcp-memory-service database: missing table memories, vec0 table memory_embeddings/);
    await untouched(input);
  });

  it('embedding dimension mismatch', async () => {
    const input = plan();
    (input.target as { dimensions?: number }).dimensions = 768;
    expect(await failureOf(input)).toMatch(/source holds 384-dim embeddings but the target wants 768\. Add a 'reembed' section/);
    await untouched(input);
  });

  it('unknown plan field and several bad fields are all named', async () => {
    const message = await failureOf({ ...plan(), batchsize: 10, copy: { batchSize: 0 }, rollbackWindow: 'soon' });
    expect(message).toMatch(/^Invalid plan — fix these fields: /);
    expect(message).toMatch(/Unrecognized key.*batchsize/);
    expect(message).toMatch(/copy\.batchSize: /);
    expect(message).toMatch(/rollbackWindow: must be a duration/);
  });

  it("a plan that names no batch size gets its target's: 2,000 into pgvector, 500 into Qdrant; one it names is kept", () => {
    const pgvector = { kind: 'pgvector' as const, url: 'postgres://127.0.0.1:5432/db', table: 'memories' };
    expect(SqliteVecPlan.parse(plan({ target: pgvector })).copy).toMatchObject({ batchSize: 2_000, concurrency: 2 });
    expect(SqliteVecPlan.parse(plan()).copy.batchSize).toBe(500);
    expect(SqliteVecPlan.parse(plan({ target: pgvector, copy: { batchSize: 300 } })).copy.batchSize).toBe(300);
  });

  it('credentials in a URL are refused without being echoed', async () => {
    const message = await failureOf(plan({ target: { kind: 'pgvector', url: 'postgres://admin:hunter2@127.0.0.1:5432/db', table: 'memories' } }));
    expect(message).toMatch(/target\.url: must not contain a password.* set PGUSER\/PGPASSWORD in the worker's environment/);
    expect(message).not.toMatch(/hunter2/);
  });

});

describe('no plan can damage the source: refused in preflight, before anything is written', () => {
  const sourceUntouched = async (input: SqliteVecPlanInput, before: string) => {
    expect(sha256(sourcePath)).toBe(before);
    expect(existsSync(`${sourcePath}-wal`)).toBe(false);
    expect(await collectionExists((input.target as { collection: string }).collection)).toBe(false);
  };

  it('cutover.file is the source', async () => {
    const before = sha256(sourcePath);
    const input = plan({ cutover: { file: sourcePath } });
    expect(await failureOf(input)).toMatch(/cutover\.file \(.*sqlite_vec\.db\) is the source database .* Nothing was written/);
    await sourceUntouched(input, before);
  });

  it('cutover.file is the source through a symlink, or its -wal', async () => {
    const before = sha256(sourcePath);
    const link = path.join(dir, 'live-link.json');
    symlinkSync(sourcePath, link);
    expect(await failureOf(plan({ cutover: { file: link } }))).toMatch(/is the source database/);
    expect(await failureOf(plan({ cutover: { file: `${sourcePath}-wal` } }))).toMatch(/is the source database/);
    await sourceUntouched(plan(), before);
  });

  it('cutover.file is another SQLite database (not a live-backend JSON file)', async () => {
    const other = path.join(dir, 'service-config.db');
    new Database(other).exec('CREATE TABLE settings (k TEXT)').close();
    const before = sha256(other);
    expect(await failureOf(plan({ cutover: { file: other } }))).toMatch(/is not a live-backend JSON file .* Nothing was written/);
    expect(sha256(other)).toBe(before);
  });

  it('cutover.file is the backup', async () => {
    const backup = path.join(dir, 'chosen.bak');
    expect(await failureOf(plan({ backupPath: backup, cutover: { file: backup } }))).toMatch(/cutover\.file .* is the backup/);
    expect(existsSync(backup)).toBe(false);
  });

  it('backupPath is the source', async () => {
    const before = sha256(sourcePath);
    const input = plan({ backupPath: sourcePath });
    expect(await failureOf(input)).toMatch(/backupPath \(.*sqlite_vec\.db\) is the source database .* Nothing was written/);
    await sourceUntouched(input, before);
  });

  it('backupPath already exists', async () => {
    const existing = path.join(dir, 'someone-elses.bak');
    writeFileSync(existing, 'precious');
    expect(await failureOf(plan({ backupPath: existing }))).toMatch(/backupPath: .* already exists; memshift never overwrites a file it did not write/);
    expect(readFileSync(existing, 'utf8')).toBe('precious');
  });

  it("backupPath outside the worker's MEMSHIFT_WRITE_DIRS", async () => {
    const allowed = path.join(dir, 'allowed');
    process.env.MEMSHIFT_WRITE_DIRS = allowed; // the in-process worker's environment
    try {
      expect(await failureOf(plan({ backupPath: path.join(dir, 'elsewhere.bak') }))).toMatch(/backupPath .* is outside the directories this worker may write \(MEMSHIFT_WRITE_DIRS=/);
    } finally {
      delete process.env.MEMSHIFT_WRITE_DIRS;
    }
    expect(existsSync(path.join(dir, 'elsewhere.bak'))).toBe(false);
  });
});

it('workflow history holds no credentials and no memory contents, through cutover and a rollback that carries writes back', async () => {
  const input = plan({ cutover: { file: path.join(dir, 'history-live.json') }, rollbackWindow: '5m', catchUp: { every: '1s' } });
  const handle = await client.workflow.start(sqliteVecMigration, { taskQueue, workflowId: uniqueName('history'), args: [input] });
  await waitForPhase(handle, 'await-approval');
  await new Promise((r) => setTimeout(r, 1_500)); // a catch-up while waiting
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'ops' }] });
  await waitForPhase(handle, 'rollback-window');
  const written = 'Written to the target after cutover: a secret plan';
  const target = openTarget({ kind: 'qdrant', url: qdrant.url, collection: (input.target as { collection: string }).collection });
  const [template] = (await target.readPage(null, 1)).points;
  await target.upsert([{ ...template, id: '6f1c3c3e-0d4b-4c47-9a43-5d7f0b1a2c3d', payload: { ...template.payload, content: written, content_hash: 'hash-of-the-secret-plan', source_id: undefined } }]);
  await target.close();
  await handle.signal(rollbackSignal, { by: 'ops' });
  const result = await handle.result();
  expect(result.outcome).toBe('rolled-back');
  expect(result.notes.join('\n')).toMatch(/1 post-cutover writes carried back into the source \(0 rows updated, 1 new\)/);

  const history = historyText(await handle.fetchHistory());
  expect(history).toContain(input.target.kind === 'qdrant' ? input.target.collection : ''); // the text is really decoded
  expect(history).not.toContain(API_KEY);
  expect(history).not.toContain(EMBEDDINGS_KEY);
  const db = openReadOnly(sourcePath);
  const memories = db.prepare('SELECT content, content_hash FROM memories').all() as { content: string; content_hash: string }[];
  db.close();
  expect(memories.map((m) => m.content)).toContain(written);
  for (const { content, content_hash } of memories) {
    expect(history).not.toContain(content);
    expect(history).not.toContain(content_hash);
  }
});

/** Every string and payload in the history, payload bytes decoded as UTF-8. */
function historyText(value: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown) => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(value);
  return parts.join('\n');
}
