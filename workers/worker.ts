/**
 * Builds a memshift worker: all workflows, all activities, one task queue.
 * Activities get a client of their own so a running copy can query and
 * signal its workflow (pause, live batch size, progress).
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type NativeConnectionOptions } from '@temporalio/worker';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createActivities } from '../activities';
import { setWorkerStoppingCheck } from '../activities/worker-state';
import { ensureSearchAttributes } from '../client/search-attributes-setup';

export interface MemshiftWorkerOptions {
  /** From client/temporal-config.ts: address, TLS, API key. */
  connectionOptions: NativeConnectionOptions;
  namespace: string;
  taskQueue: string;
  /** A prebuilt workflow bundle (bundleWorkflowCode) to skip bundling at start. */
  workflowBundlePath?: string;
}

export async function createMemshiftWorker(options: MemshiftWorkerOptions) {
  const connection = await NativeConnection.connect(options.connectionOptions);
  const clientConnection = await Connection.connect(options.connectionOptions);
  const client = new Client({ connection: clientConnection, namespace: options.namespace });
  const attributes = await ensureSearchAttributes(clientConnection, options.namespace).catch(async (err: Error) => {
    await Promise.all([clientConnection.close(), connection.close()]);
    throw err;
  });
  const worker = await Worker.create({
    connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundlePath
      ? { workflowBundle: { code: readFileSync(options.workflowBundlePath, 'utf8') } }
      : { workflowsPath: path.resolve(__dirname, '../workflows/index.ts') }),
    activities: createActivities({ client }),
    // Heartbeats carry a copy's live progress to `describe` and the Web UI (no history is written):
    // send them every couple of seconds rather than at 80% of the heartbeat timeout.
    maxHeartbeatThrottleInterval: '2s',
    // On SIGTERM, short activities (cutover, verify, rollback steps) get this long to finish untouched;
    // a copy stops at once after writing what is in flight and heartbeating its cursor (copy-engine.ts).
    shutdownGraceTime: process.env.MEMSHIFT_SHUTDOWN_GRACE ?? '60s',
  });
  setWorkerStoppingCheck(() => worker.getState() !== 'RUNNING');
  return {
    worker,
    /** memshift search attributes this worker registered at start (missing before). */
    registeredSearchAttributes: attributes.added,
    /** Runs until shutdown (SIGINT/SIGTERM or worker.shutdown()), then closes connections. */
    async run() {
      try {
        await worker.run();
      } finally {
        await clientConnection.close();
        await connection.close();
      }
    },
  };
}
