/**
 * One real Temporal dev server (the official CLI) for the whole suite, with
 * memshift's search attributes registered, and the workflow bundle built once.
 * Test processes are forked after this runs and find both through the env.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stopListedClusters } from '../../scripts/native-postgres';
import { MEMSHIFT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { recordHistories } from './record-histories';
import { TEMPORAL_CLI } from './temporal';

export default async function setup() {
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: TEMPORAL_CLI },
      searchAttributes: MEMSHIFT_SEARCH_ATTRIBUTES,
      extraArgs: ['--log-level', 'error'],
    },
  });
  process.env.TEMPORAL_ADDRESS = env.address;
  const { code } = await bundleWorkflowCode({ workflowsPath: path.resolve(__dirname, '../../workflows/index.ts'), logger: quietLogger });
  const bundlePath = path.join(mkdtempSync(path.join(os.tmpdir(), 'memshift-bundle-')), 'workflows.js');
  writeFileSync(bundlePath, code);
  process.env.MEMSHIFT_WORKFLOW_BUNDLE = bundlePath;
  // Every native PostgreSQL cluster a test starts is listed, so none outlives the suite.
  const clusterList = path.join(path.dirname(bundlePath), 'postgres-clusters');
  process.env.MEMSHIFT_PG_CLUSTER_LIST = clusterList;
  return async () => {
    await stopListedClusters(clusterList);
    if (process.env.MEMSHIFT_RECORD_HISTORIES) console.log(`Recorded histories: ${(await recordHistories(env.client)).join(', ')}`);
    await env.teardown();
  };
}

const quietLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn: console.warn,
  error: console.error,
};
