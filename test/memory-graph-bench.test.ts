/**
 * Opt-in measurement (MEMSHIFT_BENCH=1): 10,000 memories and 20,000
 * relationships written by memorygraph into SQLite, moved to a real FalkorDB
 * by memoryGraphMigration on a real Temporal server. The seed's target is
 * under 2 minutes for 10k. The store is written by memorygraph's own code,
 * committed once (per-write commits take many minutes); MEMSHIFT_BENCH_SOURCE
 * reuses a populated store.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approveUpdate } from '../workflows/messages';
import { memoryGraphMigration } from '../workflows/memory-graph-migration';
import { startTestFalkorDB, type TestFalkorDB } from './support/falkordb';
import { connectClient, startWorker, tempDir, uniqueQueue, waitForPhase } from './support/harness';
import { populateWithMemorygraph } from './support/memorygraph';

const MEMORIES = 10_000;
const RELATIONSHIPS = 20_000;
const enabled = !!process.env.MEMSHIFT_BENCH;

describe.runIf(enabled)('benchmark: 10k memories + 20k relationships, SQLite → FalkorDB', () => {
  let falkor: TestFalkorDB;
  const dir = tempDir();
  const source = process.env.MEMSHIFT_BENCH_SOURCE ?? path.join(dir, 'bench.db');

  beforeAll(async () => {
    falkor = await startTestFalkorDB();
    if (!existsSync(source)) await populateWithMemorygraph({ kind: 'sqlite', path: source }, { memories: MEMORIES, relationships: RELATIONSHIPS, seed: 'bench', oneTransaction: true });
  }, 1_800_000);

  afterAll(async () => {
    await falkor?.stop();
  });

  it('copies and validates everything in under 2 minutes', async () => {
    const client = await connectClient();
    const taskQueue = uniqueQueue('memorygraph-bench');
    const worker = await startWorker(taskQueue);
    try {
      const started = Date.now();
      const handle = await client.workflow.start(memoryGraphMigration, {
        taskQueue,
        workflowId: `mg-bench-${Date.now()}`,
        args: [{
          source: { kind: 'sqlite', path: source },
          target: { kind: 'falkordb', url: falkor.url, graph: 'memorygraph' },
          workDir: path.join(dir, 'runs'),
          copy: { batchSize: 1000, concurrency: 2 },
          cutover: { file: path.join(dir, 'live.json') },
        }],
      });
      const waiting = await waitForPhase(handle, 'await-approval', 1_200_000);
      const toApproval = (Date.now() - started) / 1000;
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bench' }] });
      const result = await handle.result();
      const total = (Date.now() - started) / 1000;
      console.log(
        `memoryGraphMigration SQLite → FalkorDB: ${result.memories} memories + ${result.relationships} relationships; ` +
          `copy ${result.copySeconds.toFixed(1)}s (${Math.round((result.memories + result.relationships) / result.copySeconds)} items/s); ` +
          `start → validated, awaiting approval ${toApproval.toFixed(1)}s; start → cut over ${total.toFixed(1)}s; peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB (test process with the worker)`,
      );
      expect(waiting.report?.ok).toBe(true);
      expect([result.memories, result.relationships]).toEqual([MEMORIES, RELATIONSHIPS]);
      expect(result.copySeconds).toBeLessThan(120);
    } finally {
      await worker.stop();
    }
  }, 1_800_000);
});
