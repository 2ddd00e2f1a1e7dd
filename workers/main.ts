/**
 * The memshift worker process: `npm run worker`.
 * Reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MEMSHIFT_TASK_QUEUE, MEMSHIFT_LOG_LEVEL; store
 * credentials (PGUSER/PGPASSWORD, QDRANT_API_KEY, NEO4J_USER/NEO4J_PASSWORD,
 * MEMSHIFT_EMBEDDINGS_API_KEY) stay in this process's environment.
 * SIGTERM/SIGINT drain running tasks and exit cleanly; an interrupted copy
 * resumes from its last heartbeat on the next worker.
 */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { TASK_QUEUE, temporalConfig } from '../client/temporal-config';
import { createMemshiftWorker } from './worker';

async function main() {
  Runtime.install({ logger: new DefaultLogger((process.env.MEMSHIFT_LOG_LEVEL ?? 'INFO') as LogLevel) });
  const { address, namespace } = temporalConfig();
  const { run } = await createMemshiftWorker({
    address,
    namespace,
    taskQueue: TASK_QUEUE,
    workflowBundlePath: process.env.MEMSHIFT_WORKFLOW_BUNDLE,
  });
  console.log(`memshift worker on ${address} (namespace ${namespace}, task queue ${TASK_QUEUE})`);
  await run();
  console.log('memshift worker stopped');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
