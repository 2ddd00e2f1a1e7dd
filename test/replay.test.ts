/**
 * Runs in flight survive deploys: every history under test/histories/ (one
 * per runbook × outcome, crash-resumed ones included, one folder per recorded
 * version; `npm run record-histories` writes them) must replay on today's
 * workflow code. A change to a runbook's command sequence without patched()
 * fails here.
 */
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { HISTORIES_DIR, HISTORY_SUFFIX, RUNBOOKS } from './support/record-histories';

Runtime.install({ logger: new DefaultLogger('WARN') });

const files = (readdirSync(HISTORIES_DIR, { recursive: true }) as string[]).filter((f) => f.endsWith(HISTORY_SUFFIX)).sort();

it('there are recorded histories of every runbook, including crash-resumed and rolled-back runs', () => {
  for (const runbook of RUNBOOKS) {
    expect(files.filter((f) => path.basename(f).startsWith(`${runbook}-`)).length, runbook).toBeGreaterThanOrEqual(3);
  }
  expect(files.some((f) => f.endsWith(`-resumed${HISTORY_SUFFIX}`))).toBe(true);
  expect(files.some((f) => f.includes('-rolled-back'))).toBe(true);
});

it.each(files)('%s replays on the current workflow code', async (file) => {
  const history = temporal.api.history.v1.History.decode(readFileSync(path.join(HISTORIES_DIR, file)));
  await Worker.runReplayHistory({ workflowBundle: { codePath: process.env.MEMSHIFT_WORKFLOW_BUNDLE! } }, history, file);
});
