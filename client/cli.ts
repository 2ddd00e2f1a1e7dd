#!/usr/bin/env -S node --import tsx
/**
 * memshift: start, watch, approve and steer migrations from a terminal.
 *
 *   memshift start sqliteVecMigration --plan plan.json [--id ID]
 *   memshift status <id> [--watch]
 *   memshift approve <id> --by NAME [--reason TEXT] [--signal]
 *   memshift reject|rollback <id> --by NAME [--reason TEXT]
 *   memshift pause|resume <id>
 *   memshift set-copy <id> [--batch-size N] [--concurrency N]
 *   memshift list [--query Q] [--limit N]
 *
 * Connection settings come from client/temporal-config.ts (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, MEMSHIFT_TASK_QUEUE); Web UI links from MEMSHIFT_UI_URL.
 * Exit codes: 0 ok, 1 operation refused or failed, 2 usage or bad input.
 */
import { Client, Connection, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { Command, InvalidArgumentError, type CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import {
  approveSignal,
  approveUpdate,
  pauseSignal,
  rejectSignal,
  resumeSignal,
  rollbackSignal,
  setCopySettingsSignal,
  statusQuery,
  type CopySettings,
  type Decision,
} from '../workflows/messages';
import { MigrationKind, MigrationPhase, MigrationSource, MigrationTarget } from '../workflows/search-attributes';
import { QdrantRebuildPlan } from '../workflows/qdrant-collection-rebuild';
import { SqliteVecPlan } from '../workflows/sqlite-vec-migration';
import { TenantSchemaPlan } from '../workflows/tenant-schema-upgrade';
import { statusLines, table, takeSnapshot, watch, webUiLink } from './status-view';
import { TASK_QUEUE, temporalConfig } from './temporal-config';

/** Every runbook `memshift start` knows: the plan schema it validates and the prefix of its default id. */
const RUNBOOKS: Record<string, { plan: z.ZodType; idPrefix: string }> = {
  sqliteVecMigration: { plan: SqliteVecPlan, idPrefix: 'sqlite-vec' },
  tenantSchemaUpgrade: { plan: TenantSchemaPlan, idPrefix: 'tenant-schema' },
  qdrantCollectionRebuild: { plan: QdrantRebuildPlan, idPrefix: 'qdrant-rebuild' },
};

const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** An error whose message is meant for the operator, with the exit code it ends the CLI with. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const usageError = (message: string) => new CliError(message, EXIT.usage);
const refusal = (message: string) => new CliError(message, EXIT.refused);

// ---------------------------------------------------------------- connection

async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const { address, namespace } = temporalConfig();
  const connection = await Connection.connect({ address }).catch((err: Error) => {
    throw refusal(`Cannot reach Temporal at ${address}: ${err.message}`);
  });
  try {
    return await work(new Client({ connection, namespace }));
  } finally {
    await connection.close();
  }
}

// ---------------------------------------------------------------- start

function readPlanFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw usageError(`Cannot read plan ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw usageError(`Plan ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Every bad field of a plan as `path: message`, or an empty list when it is valid. */
function planProblems(schema: z.ZodType, plan: unknown): string[] {
  const parsed = schema.safeParse(plan);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(plan)'}: ${issue.message}`);
}

function runbookNamed(workflow: string) {
  const runbook = RUNBOOKS[workflow];
  if (!runbook) throw usageError(`Unknown workflow '${workflow}'. Known: ${Object.keys(RUNBOOKS).join(', ')}.`);
  return runbook;
}

function defaultWorkflowId(prefix: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace('T', '-');
  return `${prefix}-${stamp}`;
}

async function startCommand(workflow: string, options: { plan: string; id?: string }) {
  const runbook = runbookNamed(workflow);
  const plan = readPlanFile(options.plan);
  const problems = planProblems(runbook.plan, plan);
  if (problems.length) {
    throw usageError(`Invalid plan ${options.plan} — fix these fields:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  const workflowId = options.id ?? defaultWorkflowId(runbook.idPrefix);
  await withClient((client) => client.workflow.start(workflow, { taskQueue: TASK_QUEUE, workflowId, args: [plan] }));
  console.log(`Started ${workflow} as ${workflowId} on task queue ${TASK_QUEUE}.`);
  console.log(`Web UI: ${webUiLink(workflowId)}`);
  console.log('Next:');
  console.log(`  memshift status ${workflowId} --watch`);
  console.log(`  memshift approve ${workflowId} --by NAME --reason TEXT   (once it awaits approval)`);
  console.log(`  memshift reject ${workflowId} --by NAME --reason TEXT`);
}

// ---------------------------------------------------------------- status

async function statusCommand(workflowId: string, options: { watch?: boolean }) {
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(workflowId);
    const last = options.watch ? await watch(handle) : await takeSnapshot(handle);
    console.log(statusLines(workflowId, last).join('\n'));
    if (options.watch && last.execution !== 'COMPLETED') {
      throw refusal(`Workflow ${workflowId} ended ${last.execution}.`);
    }
  });
}

// ---------------------------------------------------------------- decisions and controls

function decisionFrom(options: { by: string; reason?: string }): Decision {
  return options.reason ? { by: options.by, reason: options.reason } : { by: options.by };
}

/** The innermost message of an update refused by its validator. */
function refusalMessage(err: WorkflowUpdateFailedError): string {
  let cause: Error = err;
  while (cause.cause instanceof Error) cause = cause.cause;
  return cause.message;
}

async function approveCommand(workflowId: string, options: { by: string; reason?: string; signal?: boolean }) {
  if (options.signal) return signalDecision(workflowId, 'approve', options);
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(workflowId);
    const status = await handle.executeUpdate(approveUpdate, { args: [decisionFrom(options)] }).catch((err: unknown) => {
      if (err instanceof WorkflowUpdateFailedError) throw refusal(`Approval refused: ${refusalMessage(err)}`);
      throw err;
    });
    console.log(`Approved ${workflowId} as ${options.by}; the migration moves on from ${status.phase}.`);
    console.log(`Follow it: memshift status ${workflowId} --watch`);
  });
}

const DECISION_SIGNALS = { approve: approveSignal, reject: rejectSignal, rollback: rollbackSignal };
const SIGNAL_SETTLE_MS = 3_000;

/**
 * Signals cannot be refused, so the workflow notes the ones it ignores.
 * After sending, wait briefly for the workflow's notes and report them;
 * an "Ignored …" note ends the CLI with exit 1.
 */
async function signalAndReport(handle: WorkflowHandle, send: () => Promise<void>): Promise<void> {
  const before = (await handle.query(statusQuery)).notes.length;
  await send();
  const deadline = Date.now() + SIGNAL_SETTLE_MS;
  let fresh: string[] = [];
  while (Date.now() < deadline && fresh.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    fresh = (await handle.query(statusQuery)).notes.slice(before);
  }
  fresh.forEach((note) => console.log(`  ${note}`));
  const ignored = fresh.find((note) => note.startsWith('Ignored'));
  if (ignored) throw refusal(`The workflow ignored the signal: ${ignored}`);
}

async function signalDecision(workflowId: string, name: keyof typeof DECISION_SIGNALS, options: { by: string; reason?: string }) {
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(workflowId);
    console.log(`Sending ${name} to ${workflowId} as ${options.by}.`);
    await signalAndReport(handle, () => handle.signal(DECISION_SIGNALS[name], decisionFrom(options)));
  });
}

async function pauseOrResume(workflowId: string, pause: boolean) {
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(workflowId);
    await handle.signal(pause ? pauseSignal : resumeSignal);
    console.log(pause ? `Paused ${workflowId}: the copy stops after its current batch; no new phase starts.` : `Resumed ${workflowId}.`);
  });
}

async function setCopyCommand(workflowId: string, options: Partial<CopySettings>) {
  if (options.batchSize === undefined && options.concurrency === undefined) {
    throw usageError('set-copy needs --batch-size N and/or --concurrency N.');
  }
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(workflowId);
    await signalAndReport(handle, () => handle.signal(setCopySettingsSignal, options));
  });
}

// ---------------------------------------------------------------- list

const runbookQuery = () => `WorkflowType IN (${Object.keys(RUNBOOKS).map((name) => `'${name}'`).join(', ')})`;

async function listCommand(options: { query?: string; limit: number }) {
  const query = options.query ? `${runbookQuery()} AND (${options.query})` : runbookQuery();
  await withClient(async (client) => {
    const rows = [['WORKFLOW ID', 'STATUS', 'KIND', 'PHASE', 'SOURCE', 'TARGET', 'STARTED']];
    for await (const info of client.workflow.list({ query })) {
      const attribute = (key: typeof MigrationKind) => info.typedSearchAttributes.get(key) ?? '-';
      rows.push([
        info.workflowId,
        info.status.name,
        attribute(MigrationKind),
        attribute(MigrationPhase),
        attribute(MigrationSource),
        attribute(MigrationTarget),
        info.startTime.toISOString(),
      ]);
      if (rows.length > options.limit) break;
    }
    if (rows.length === 1) console.log(`No memshift workflows match: ${query}`);
    else console.log(table(rows).join('\n'));
  });
}

// ---------------------------------------------------------------- commands

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function buildProgram(): Command {
  const program = new Command('memshift')
    .description('Durable, approval-gated AI-memory migrations on Temporal')
    .exitOverride((err: CommanderError) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));

  program
    .command('start')
    .description('validate a plan locally, then start a migration workflow')
    .argument('<workflow>', `workflow type: ${Object.keys(RUNBOOKS).join(', ')}`)
    .requiredOption('--plan <file>', 'the plan JSON')
    .option('--id <workflowId>', 'workflow id (default: <kind>-<UTC timestamp>)')
    .action(startCommand);

  program
    .command('status')
    .description('phase, progress, validation report, approval state, notes')
    .argument('<id>', 'workflow id')
    .option('--watch', 'follow until the workflow closes (exit 1 unless it completes)')
    .action(statusCommand);

  program
    .command('approve')
    .description('approve the cutover (update: refused at once if not allowed)')
    .argument('<id>', 'workflow id')
    .requiredOption('--by <name>', 'who approves')
    .option('--reason <text>', 'why')
    .option('--signal', 'send the approve signal instead of the update')
    .action(approveCommand);

  for (const name of ['reject', 'rollback'] as const) {
    program
      .command(name)
      .description(name === 'reject' ? 'reject the cutover: no cutover, target handled as the plan says' : 'undo a cutover within the rollback window (a rejection before cutover)')
      .argument('<id>', 'workflow id')
      .requiredOption('--by <name>', 'who decides')
      .option('--reason <text>', 'why')
      .action((id: string, options: Decision) => signalDecision(id, name, options));
  }

  program.command('pause').description('pause the copy and phase progression').argument('<id>', 'workflow id').action((id: string) => pauseOrResume(id, true));
  program.command('resume').description('resume after pause').argument('<id>', 'workflow id').action((id: string) => pauseOrResume(id, false));

  program
    .command('set-copy')
    .description('change batch size and/or concurrency of a running copy')
    .argument('<id>', 'workflow id')
    .option('--batch-size <n>', 'points per batch', positiveInteger)
    .option('--concurrency <n>', 'batches in flight', positiveInteger)
    .action(setCopyCommand);

  program
    .command('list')
    .description('recent memshift workflows with their search attributes')
    .option('--query <q>', "extra visibility filter, e.g. \"MigrationPhase = 'await-approval'\"")
    .option('--limit <n>', 'at most this many', positiveInteger, 20)
    .action(listCommand);

  return program;
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  return EXIT.refused;
}

function messageFor(err: unknown): string {
  if (err instanceof WorkflowNotFoundError) return `No such workflow: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    console.error(`memshift: ${messageFor(err)}`);
    process.exit(exitCodeFor(err));
  });
