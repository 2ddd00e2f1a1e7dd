/**
 * The worker process exports the SDK's metrics for Prometheus on
 * MEMSHIFT_METRICS_PORT: the names docs/operating.md tells operators to alert on.
 */
import path from 'node:path';
import { expect, it } from 'vitest';
import { freePort } from '../scripts/embedded-postgres';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';
import { connectClient, spawnWorkerProcess, tempDir, uniqueQueue } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant } from './support/qdrant';

it('a worker with MEMSHIFT_METRICS_PORT serves /metrics with workflow and activity metrics', async () => {
  const [client, qdrant, port] = await Promise.all([connectClient(), startTestQdrant(), freePort()]);
  const taskQueue = uniqueQueue('metrics');
  const worker = spawnWorkerProcess(taskQueue, { MEMSHIFT_METRICS_PORT: String(port) });
  try {
    const dir = tempDir();
    const sourcePath = path.join(dir, 'sqlite_vec.db');
    generateMcpStore(sourcePath, { count: 50, dimensions: 8, deletedEvery: 0 });
    const plan = {
      source: { path: sourcePath },
      target: { kind: 'qdrant' as const, url: qdrant.url, collection: uniqueName('memories') },
      cutover: { file: path.join(dir, 'live.json') },
      dryRun: true,
    };
    const result = await client.workflow.execute(sqliteVecMigration, { taskQueue, workflowId: uniqueName('metrics'), args: [plan] });
    expect(result.outcome).toBe('dry-run');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const name of ['temporal_workflow_completed', 'temporal_activity_execution_latency', 'temporal_activity_schedule_to_start_latency', 'temporal_worker_task_slots_available']) {
      expect(metrics, name).toMatch(new RegExp(`^${name}`, 'm'));
    }
    expect(metrics).toMatch(new RegExp(`task_queue="${taskQueue}"`));
  } finally {
    worker.kill('SIGTERM');
    await qdrant.stop();
  }
});
