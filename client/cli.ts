#!/usr/bin/env -S node --import tsx
/**
 * memshift: start, watch, approve and steer migrations from a terminal.
 *
 *   memshift setup
 *   memshift start sqliteVecMigration --plan plan.json [--id ID]
 *   memshift status <id> [--watch]
 *   memshift approve|reject <id> --by NAME [--reason TEXT] [--signal]
 *   memshift rollback <id> --by NAME [--reason TEXT] [--mode keep-writes|restore-backup] [--accept-loss] [--signal]
 *   memshift pause|resume <id> [--by NAME] [--signal]
 *   memshift set-copy <id> [--batch-size N] [--concurrency N] [--by NAME] [--signal]
 *   memshift list [--query Q] [--limit N]
 *
 * Every decision and control is sent as an update, which the workflow answers
 * at once (refused: exit 1 with its reason); --signal sends the signal form.
 * Connection settings come from client/temporal-config.ts (Temporal's config
 * file and TEMPORAL_* variables, MEMSHIFT_TASK_QUEUE); Web UI links from MEMSHIFT_UI_URL.
 * Exit codes: 0 ok, 1 operation refused or failed, 2 usage or bad input.
 */
import { Client, Connection, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { Command, InvalidArgumentError, Option, type CommanderError } from 'commander';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import {
  approveSignal,
  approveUpdate,
  pauseSignal,
  pauseUpdate,
  rejectSignal,
  rejectUpdate,
  resumeSignal,
  resumeUpdate,
  rollbackSignal,
  rollbackUpdate,
  setCopySettingsSignal,
  setCopySettingsUpdate,
  statusQuery,
  type MigrationStatus,
} from '../workflows/messages';
import { MigrationKind, MigrationOutcome, MigrationPhase, MigrationSource, MigrationTarget } from '../workflows/search-attributes';
import { ensureSearchAttributes } from './search-attributes-setup';
import { MemoryGraphPlan } from '../workflows/memory-graph-plan';
import { QdrantRebuildPlan } from '../workflows/qdrant-collection-rebuild';
import { SecondBrainPlan } from '../workflows/second-brain-plan';
import { SqliteVecPlan } from '../workflows/sqlite-vec-migration';
import { TenantSchemaPlan } from '../workflows/tenant-schema-upgrade';
import { statusLines, table, takeSnapshot, watch, webUiLink } from './status-view';
import { TASK_QUEUE, temporalConfig } from './temporal-config';

/** Every runbook `memshift start` knows: the plan schema it validates and the prefix of its default id. */
const RUNBOOKS: Record<string, { plan: z.ZodType; idPrefix: string }> = {
  sqliteVecMigration: { plan: SqliteVecPlan, idPrefix: 'sqlite-vec' },
  tenantSchemaUpgrade: { plan: TenantSchemaPlan, idPrefix: 'tenant-schema' },
  qdrantCollectionRebuild: { plan: QdrantRebuildPlan, idPrefix: 'qdrant-rebuild' },
  secondBrainV3Migration: { plan: SecondBrainPlan, idPrefix: 'second-brain-v3' },
  memoryGraphMigration: { plan: MemoryGraphPlan, idPrefix: 'memorygraph' },
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

async function withClient<T>(work: (client: Client, connection: Connection) => Promise<T>): Promise<T> {
  const { connectionOptions, namespace } = temporalConfig();
  const connection = await Connection.connect(connectionOptions).catch((err: Error) => {
    throw refusal(`Cannot reach Temporal at ${connectionOptions.address}: ${err.message}`);
  });
  try {
    return await work(new Client({ connection, namespace }), connection);
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
  // Shown by the Web UI for the run's whole life; the plan names endpoints and files only (checked above).
  const planText = JSON.stringify(plan, null, 2);
  const staticSummary = `${workflow} — plan ${createHash('sha256').update(planText).digest('hex').slice(0, 12)}`;
  const staticDetails = `Plan (${options.plan}):\n\n\`\`\`json\n${planText}\n\`\`\``;
  await withClient((client) => client.workflow.start(workflow, { taskQueue: TASK_QUEUE, workflowId, args: [plan], staticSummary, staticDetails }));
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

/** The innermost message of an update refused by its validator. */
function refusalMessage(err: WorkflowUpdateFailedError): string {
  let cause: Error = err;
  while (cause.cause instanceof Error) cause = cause.cause;
  return cause.message;
}

/** Every message a person sends, as an update (answered at once) or, with --signal, as a signal. */
const MESSAGES = {
  approve: { update: approveUpdate, signal: approveSignal },
  reject: { update: rejectUpdate, signal: rejectSignal },
  rollback: { update: rollbackUpdate, signal: rollbackSignal },
  pause: { update: pauseUpdate, signal: pauseSignal },
  resume: { update: resumeUpdate, signal: resumeSignal },
  'set-copy': { update: setCopySettingsUpdate, signal: setCopySettingsSignal },
} as const;
type MessageName = keyof typeof MESSAGES;

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

async function send(workflowId: string, name: MessageName, arg: object, viaSignal = false): Promise<MigrationStatus | null> {
  const { update, signal } = MESSAGES[name];
  return withClient(async (client) => {
    const handle = client.workflow.getHandle(workflowId);
    if (viaSignal) {
      console.log(`Sending the ${signal.name} signal to ${workflowId}.`);
      await signalAndReport(handle, () => handle.signal(signal as typeof rollbackSignal, arg as never));
      return null;
    }
    return handle.executeUpdate(update as typeof rollbackUpdate, { args: [arg as never] }).catch((err: unknown) => {
      if (err instanceof WorkflowUpdateFailedError) throw refusal(`${name} refused: ${refusalMessage(err)}`);
      throw err;
    });
  });
}

interface DecisionOptions {
  by: string;
  reason?: string;
  signal?: boolean;
}

const decisionFrom = ({ by, reason }: { by?: string; reason?: string }) => ({ ...(by ? { by } : {}), ...(reason ? { reason } : {}) });

async function decisionCommand(name: 'approve' | 'reject', workflowId: string, options: DecisionOptions) {
  const status = await send(workflowId, name, decisionFrom(options), options.signal);
  if (!status) return;
  console.log(`${name === 'approve' ? 'Approved' : 'Rejected'} ${workflowId} as ${options.by}; the migration moves on from ${status.phase}.`);
  console.log(`Follow it: memshift status ${workflowId} --watch`);
}

async function rollbackCommand(workflowId: string, options: DecisionOptions & { mode?: 'keep-writes' | 'restore-backup'; acceptLoss?: boolean }) {
  const request = { ...decisionFrom(options), ...(options.mode ? { mode: options.mode } : {}), ...(options.acceptLoss ? { acceptLoss: true } : {}) };
  const status = await send(workflowId, 'rollback', request, options.signal);
  if (status) console.log(`Rollback of ${workflowId} requested as ${options.by} (phase ${status.phase}); follow it: memshift status ${workflowId} --watch`);
}

async function controlCommand(name: 'pause' | 'resume', workflowId: string, options: { by?: string; signal?: boolean }) {
  await send(workflowId, name, decisionFrom(options), options.signal);
  console.log(name === 'pause' ? `Paused ${workflowId}: the copy stops after its current batch; no new phase starts.` : `Resumed ${workflowId}.`);
}

async function setCopyCommand(workflowId: string, options: { batchSize?: number; concurrency?: number; by?: string; signal?: boolean }) {
  if (options.batchSize === undefined && options.concurrency === undefined) {
    throw usageError('set-copy needs --batch-size N and/or --concurrency N.');
  }
  const { batchSize, concurrency } = options;
  const status = await send(workflowId, 'set-copy', { ...decisionFrom(options), ...(batchSize ? { batchSize } : {}), ...(concurrency ? { concurrency } : {}) }, options.signal);
  if (status) console.log(`Copy settings of ${workflowId} now batch ${status.copy.batchSize} × ${status.copy.concurrency}.`);
}

// ---------------------------------------------------------------- setup

async function setupCommand() {
  const { namespace } = temporalConfig();
  await withClient(async (_client, connection) => {
    const { added, present } = await ensureSearchAttributes(connection, namespace).catch((err: Error) => {
      throw refusal(err.message);
    });
    if (added.length) console.log(`Registered search attributes on '${namespace}': ${added.join(', ')}.`);
    if (present.length) console.log(`Already registered on '${namespace}': ${present.join(', ')}.`);
  });
}

// ---------------------------------------------------------------- list

const runbookQuery = () => `WorkflowType IN (${Object.keys(RUNBOOKS).map((name) => `'${name}'`).join(', ')})`;

async function listCommand(options: { query?: string; limit: number }) {
  const query = options.query ? `${runbookQuery()} AND (${options.query})` : runbookQuery();
  await withClient(async (client) => {
    const rows = [['WORKFLOW ID', 'STATUS', 'KIND', 'PHASE', 'OUTCOME', 'SOURCE', 'TARGET', 'STARTED']];
    for await (const info of client.workflow.list({ query })) {
      const attribute = (key: typeof MigrationKind) => info.typedSearchAttributes.get(key) ?? '-';
      rows.push([
        info.workflowId,
        info.status.name,
        attribute(MigrationKind),
        attribute(MigrationPhase),
        attribute(MigrationOutcome),
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
    .command('setup')
    .description("register memshift's search attributes on the namespace (once per namespace; workers also try at start)")
    .action(setupCommand);

  for (const name of ['approve', 'reject'] as const) {
    program
      .command(name)
      .description(name === 'approve' ? 'approve the cutover' : 'reject the cutover: no cutover, target handled as the plan says')
      .argument('<id>', 'workflow id')
      .requiredOption('--by <name>', 'who decides')
      .option('--reason <text>', 'why')
      .option('--signal', 'send the signal instead of the update')
      .action((id: string, options: DecisionOptions) => decisionCommand(name, id, options));
  }

  program
    .command('rollback')
    .description('undo a cutover within the rollback window, keeping every write (before cutover: a rejection)')
    .argument('<id>', 'workflow id')
    .requiredOption('--by <name>', 'who decides')
    .option('--reason <text>', 'why')
    .addOption(new Option('--mode <mode>', 'keep-writes (default) or restore-backup (discards later writes)').choices(['keep-writes', 'restore-backup']))
    .option('--accept-loss', 'with restore-backup: accept discarding what the backup lacks')
    .option('--signal', 'send the signal instead of the update')
    .action(rollbackCommand);

  for (const name of ['pause', 'resume'] as const) {
    program
      .command(name)
      .description(name === 'pause' ? 'pause the copy and phase progression' : 'resume after pause')
      .argument('<id>', 'workflow id')
      .option('--by <name>', 'who (required when the plan names approvers)')
      .option('--signal', 'send the signal instead of the update')
      .action((id: string, options: { by?: string; signal?: boolean }) => controlCommand(name, id, options));
  }

  program
    .command('set-copy')
    .description('change batch size and/or concurrency of a running copy (within the plan limits)')
    .argument('<id>', 'workflow id')
    .option('--batch-size <n>', 'points per batch', positiveInteger)
    .option('--concurrency <n>', 'batches in flight', positiveInteger)
    .option('--by <name>', 'who (required when the plan names approvers)')
    .option('--signal', 'send the signal instead of the update')
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
