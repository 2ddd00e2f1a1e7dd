/**
 * On a Temporal server that lacks memshift's search attributes (any real
 * cluster on day one), `memshift setup` and the worker at start register them;
 * without them every run would stick on its first upsertSearchAttributes.
 * A dev server of its own, started without the attributes.
 */
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMemshiftWorker } from '../workers/worker';
import { MEMSHIFT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { uniqueQueue } from './support/harness';
import { TEMPORAL_CLI } from './support/temporal';

const NAMES = MEMSHIFT_SEARCH_ATTRIBUTES.map((key) => key.name);
let bare: TestWorkflowEnvironment;

beforeAll(async () => {
  bare = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: TEMPORAL_CLI }, namespace: 'default', extraArgs: ['--log-level', 'error', '--namespace', 'workers'] },
  });
});

afterAll(async () => {
  await bare?.teardown();
});

async function customAttributes(namespace: string): Promise<string[]> {
  const connection = await Connection.connect({ address: bare.address });
  try {
    return Object.keys((await connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {});
  } finally {
    await connection.close();
  }
}

function memshiftSetup(namespace: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, TEMPORAL_ADDRESS: bare.address, TEMPORAL_NAMESPACE: namespace };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '../client/cli.ts'), 'setup'], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr });
    });
  });
}

it('memshift setup registers the missing attributes once, then finds them present', async () => {
  expect(await customAttributes('default')).not.toContain('MigrationPhase');
  const first = await memshiftSetup('default');
  expect(first.code, first.stderr).toBe(0);
  expect(first.stdout).toContain(`Registered search attributes on 'default': ${NAMES.join(', ')}.`);
  expect(await customAttributes('default')).toEqual(expect.arrayContaining(NAMES));
  const again = await memshiftSetup('default');
  expect(again.stdout).toContain(`Already registered on 'default': ${NAMES.join(', ')}.`);
  expect(again.stdout).not.toContain('Registered search attributes');
});

it('a worker starting on a namespace without them registers them before it polls', async () => {
  expect(await customAttributes('workers')).not.toContain('MigrationPhase');
  const { worker, run, registeredSearchAttributes } = await createMemshiftWorker({
    connectionOptions: { address: bare.address },
    namespace: 'workers',
    taskQueue: uniqueQueue('setup'),
    workflowBundlePath: process.env.MEMSHIFT_WORKFLOW_BUNDLE,
  });
  const running = run();
  worker.shutdown();
  await running;
  expect(registeredSearchAttributes).toEqual(NAMES);
  expect(await customAttributes('workers')).toEqual(expect.arrayContaining(NAMES));
});
