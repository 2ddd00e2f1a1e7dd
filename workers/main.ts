/**
 * The memshift worker process: `npm run worker`.
 * Connects with the standard Temporal settings (client/temporal-config.ts:
 * config-file profile, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 * TEMPORAL_TLS_*); reads MEMSHIFT_TASK_QUEUE, MEMSHIFT_LOG_LEVEL, MEMSHIFT_SHUTDOWN_GRACE,
 * MEMSHIFT_METRICS_PORT (Prometheus endpoint); store
 * credentials (PGUSER/PGPASSWORD, QDRANT_API_KEY, NEO4J_USER/NEO4J_PASSWORD,
 * MEMSHIFT_EMBEDDINGS_API_KEY) stay in this process's environment.
 * SIGTERM/SIGINT drain running tasks and exit cleanly; an interrupted copy
 * resumes from its last heartbeat on the next worker.
 */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { TASK_QUEUE, temporalConfig } from '../client/temporal-config';
import { createMemshiftWorker } from './worker';

async function main() {
  const metricsPort = process.env.MEMSHIFT_METRICS_PORT;
  Runtime.install({
    logger: new DefaultLogger((process.env.MEMSHIFT_LOG_LEVEL ?? 'INFO') as LogLevel),
    // The SDK's own metrics (task failures, latencies, slots) on http://<host>:<port>/metrics; see docs/operating.md.
    ...(metricsPort ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `0.0.0.0:${metricsPort}` } } } } : {}),
  });
  const { connectionOptions, namespace } = temporalConfig();
  const { run, registeredSearchAttributes } = await createMemshiftWorker({
    connectionOptions,
    namespace,
    taskQueue: TASK_QUEUE,
    workflowBundlePath: process.env.MEMSHIFT_WORKFLOW_BUNDLE,
  });
  if (registeredSearchAttributes.length) console.log(`Registered search attributes ${registeredSearchAttributes.join(', ')} on ${namespace}.`);
  console.log(`memshift worker on ${connectionOptions.address} (namespace ${namespace}, task queue ${TASK_QUEUE})`);
  await run();
  console.log('memshift worker stopped');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
