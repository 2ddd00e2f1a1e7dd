/**
 * `npm run record-histories`: after a full test run, keeps one history of
 * each way a runbook can end (workflow type × outcome × whether the copy ran
 * in key ranges × whether an activity was retried, e.g. after a worker crash)
 * in a new folder under test/histories/ named for the day and commit, for the
 * replay test. Earlier folders stay: runs started on those versions must keep
 * replaying.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MigrationOutcome } from '../../workflows/search-attributes';

export const HISTORIES_DIR = path.resolve(__dirname, '../histories');
/** Histories are kept as Temporal's own protobuf encoding, byte-exact. */
export const HISTORY_SUFFIX = '.history.pb';
export const RUNBOOKS = ['sqliteVecMigration', 'qdrantCollectionRebuild', 'tenantSchemaUpgrade', 'secondBrainV3Migration', 'memoryGraphMigration'];

export async function recordHistories(client: Client): Promise<string[]> {
  const kept = new Map<string, Uint8Array>();
  const query = `WorkflowType IN (${RUNBOOKS.map((t) => `'${t}'`).join(', ')}) AND ExecutionStatus != 'Running'`;
  for await (const info of client.workflow.list({ query })) {
    const handle = client.workflow.getHandle(info.workflowId, info.runId);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const retried = events.some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
    const ranged = events.some((e) => /^copy\w*Range$/.test(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''));
    const outcome = info.typedSearchAttributes.get(MigrationOutcome) ?? info.status.name.toLowerCase();
    const name = `${info.type}-${outcome}${ranged ? '-in-ranges' : ''}${retried ? '-resumed' : ''}`;
    if (!kept.has(name)) kept.set(name, temporal.api.history.v1.History.encode(history).finish());
  }
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const folder = path.join(HISTORIES_DIR, `${new Date().toISOString().slice(0, 10)}-${commit}`);
  mkdirSync(folder, { recursive: true });
  for (const [name, bytes] of kept) writeFileSync(path.join(folder, `${name}${HISTORY_SUFFIX}`), bytes);
  return [...kept.keys()].sort();
}
