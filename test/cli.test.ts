/**
 * The memshift CLI end to end: the real CLI as a child process, against the
 * suite's real Temporal server and a real worker, migrating a small
 * SQLite-vec store to pgvector.
 */
import type { Client } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import type { SqliteVecPlanInput } from '../workflows/sqlite-vec-migration';
import { connectClient, startWorker, tempDir, temporalAddress, uniqueQueue, waitForPhase } from './support/harness';
import { startTestPostgres, uniqueName, type TestPostgres } from './support/postgres';

const MEMORIES = 300;
const CLI = path.resolve(__dirname, '../client/cli.ts');

let client: Client;
let worker: { stop(): Promise<void> };
let postgres: TestPostgres;
const taskQueue = uniqueQueue('cli');
const dir = tempDir();
const sourcePath = path.join(dir, 'sqlite_vec.db');

beforeAll(async () => {
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 64, deletedEvery: 0 });
  [client, postgres] = await Promise.all([connectClient(), startTestPostgres()]);
  worker = await startWorker(taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await postgres?.stop();
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `memshift …` as an operator would; never throws on a non-zero exit. */
function memshift(...args: string[]): Promise<CliResult> {
  const env = { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), MEMSHIFT_TASK_QUEUE: taskQueue };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { env, cwd: path.resolve(__dirname, '..') }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number) : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}

function writePlan(plan: unknown): string {
  const file = path.join(dir, `${uniqueName('plan')}.json`);
  writeFileSync(file, JSON.stringify(plan, null, 2));
  return file;
}

function validPlan(table = uniqueName('memories')): SqliteVecPlanInput {
  return {
    source: { path: sourcePath },
    target: { kind: 'pgvector', url: postgres.url, table },
    copy: { batchSize: 100, concurrency: 2 },
    approval: { approvers: ['alice', 'bob'] },
    cutover: { file: path.join(dir, `${uniqueName('live')}.json`) },
  };
}

/** Visibility is eventually consistent: retry `list` until `seen` holds. */
async function listUntil(seen: (out: string) => boolean, ...args: string[]): Promise<CliResult> {
  const deadline = Date.now() + 30_000;
  let last: CliResult;
  do {
    last = await memshift('list', ...args);
    if (last.code === 0 && seen(last.stdout)) return last;
    await new Promise((r) => setTimeout(r, 500));
  } while (Date.now() < deadline);
  return last;
}

describe('memshift CLI', () => {
  it('refuses a bad plan with exit 2, naming every bad field, and starts nothing', async () => {
    const plan = { ...validPlan(), copy: { batchSize: 0 }, target: { kind: 'pgvector', url: 'postgres://u:hunter2@db/memories', table: 'x' } };
    const result = await memshift('start', 'sqliteVecMigration', '--plan', writePlan(plan));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/copy\.batchSize: /);
    expect(result.stderr).toMatch(/target\.url: must not contain a password/);
    expect(result.stderr).not.toContain('hunter2');
    expect(result.stdout).not.toMatch(/Started/);
  });

  it('refuses a URL with a secret in its query string, so it never reaches workflow history', async () => {
    const plan = { ...validPlan(), target: { kind: 'pgvector', url: `${postgres.url}?sslmode=disable&password=hunter3`, table: 'x' } };
    const result = await memshift('start', 'sqliteVecMigration', '--plan', writePlan(plan), '--id', uniqueName('secret'));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/target\.url: must not contain a secret in its query \(password\)/);
    expect(`${result.stdout}${result.stderr}`).not.toContain('hunter3');
    expect(result.stdout).not.toMatch(/Started/);
  });

  it('rejects usage errors and unknown workflows with exit 2', async () => {
    const results = await Promise.all([
      memshift('start', 'noSuchMigration', '--plan', writePlan(validPlan())),
      memshift('start', 'sqliteVecMigration', '--plan', path.join(dir, 'missing.json')),
      memshift('set-copy', 'some-id', '--batch-size', 'many'),
      memshift('approve', 'some-id'), // --by is required
    ]);
    expect(results.map((r) => r.code)).toEqual([2, 2, 2, 2]);
  });

  it('starts, shows status and report, refuses a stranger, approves, completes and lists', async () => {
    const table = uniqueName('memories');
    const plan = validPlan(table);
    const workflowId = uniqueName('cli-sqlite-vec');
    const started = await memshift('start', 'sqliteVecMigration', '--plan', writePlan(plan), '--id', workflowId);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toContain(`Started sqliteVecMigration as ${workflowId} on task queue ${taskQueue}`);
    expect(started.stdout).toContain(`http://127.0.0.1:8233/namespaces/default/workflows/${workflowId}`);
    expect(started.stdout).toContain(`memshift approve ${workflowId} --by NAME`);
    const described = await client.workflow.getHandle(workflowId).describe();
    expect(await described.staticSummary()).toMatch(/^sqliteVecMigration — plan [0-9a-f]{12}$/);
    expect(await described.staticDetails()).toContain(`"table": "${table}"`);

    await waitForPhase(client.workflow.getHandle(workflowId), 'await-approval');
    const status = await memshift('status', workflowId);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/Phase: await-approval/);
    expect(status.stdout).toMatch(`Copy: ${MEMORIES}/${MEMORIES} (100%)`);
    expect(status.stdout).toMatch(new RegExp(`Validation: PASSED — source ${MEMORIES}, target ${MEMORIES}`));
    expect(status.stdout).toMatch(/Per user:\n\s+user\s+source\s+target/);
    expect(status.stdout).toMatch(/\n\s+alice\s+\d+\s+\d+/);
    expect(status.stdout).toMatch(/Approval: WAITING for alice, bob/);

    const refused = await memshift('approve', workflowId, '--by', 'mallory');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/approve refused: 'mallory' is not on this plan's approver list \(alice, bob\)/);

    const approved = await memshift('approve', workflowId, '--by', 'alice', '--reason', 'report is clean');
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain(`Approved ${workflowId} as alice`);

    const watched = await memshift('status', workflowId, '--watch');
    expect(watched.code, watched.stderr).toBe(0);
    expect(watched.stdout).toMatch(/— COMPLETED/);
    expect(watched.stdout).toMatch(/Approval: APPROVED by alice \(report is clean\)/);
    expect(watched.stdout).toMatch(/Outcome: cut-over/);

    const listed = await listUntil((out) => new RegExp(`${workflowId}\\s+COMPLETED\\s+sqlite-vec\\s+done\\s+cut-over`).test(out), '--query', `MigrationOutcome = 'cut-over'`);
    expect(listed.code, listed.stderr).toBe(0);
    const row = listed.stdout.split('\n').find((line) => line.startsWith(workflowId))!;
    expect(row).toMatch(/COMPLETED\s+sqlite-vec\s+done\s+cut-over/);
    expect(row).toContain(`sqlite://${sourcePath}`);
    expect(row).toMatch(new RegExp(`pgvector://\\S+/public\\.${table}`));
  });

  it('refuses a stranger at once (update) or reports the ignored signal; pause, set-copy and reject as updates; a missing workflow is exit 1', async () => {
    const workflowId = uniqueName('cli-reject');
    expect((await memshift('start', 'sqliteVecMigration', '--plan', writePlan(validPlan()), '--id', workflowId)).code).toBe(0);
    await waitForPhase(client.workflow.getHandle(workflowId), 'await-approval');

    const refused = await memshift('reject', workflowId, '--by', 'mallory');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/reject refused: 'mallory' is not on this plan's approver list/);
    const ignored = await memshift('reject', workflowId, '--by', 'mallory', '--signal');
    expect(ignored.code).toBe(1);
    expect(ignored.stderr).toMatch(/ignored the signal: Ignored rejection: 'mallory' is not on this plan's approver list/);
    const nameless = await memshift('pause', workflowId);
    expect(nameless.code).toBe(1);
    expect(nameless.stderr).toMatch(/pause refused: Say who you are/);
    const tooBig = await memshift('set-copy', workflowId, '--batch-size', '20000', '--by', 'bob');
    expect(tooBig.code).toBe(1);
    expect(tooBig.stderr).toMatch(/set-copy refused: batchSize must be a whole number from 1 to 10000/);
    const settings = await memshift('set-copy', workflowId, '--concurrency', '3', '--by', 'bob');
    expect(settings.code, settings.stderr).toBe(0);
    expect(settings.stdout).toMatch(/now batch 100 × 3/);

    const rejected = await memshift('reject', workflowId, '--by', 'bob', '--reason', 'wrong window');
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(rejected.stdout).toMatch(/Rejected .* as bob/);
    expect(await client.workflow.getHandle(workflowId).result()).toMatchObject({ outcome: 'rejected' });

    expect((await memshift('status', uniqueName('no-such-workflow'))).code).toBe(1);
  });
});
