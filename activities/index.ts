/**
 * Every activity the memshift worker registers. Workflows import this file's
 * type only (`proxyActivities<ReturnType<typeof createActivities>>`).
 */
import type { Client } from '@temporalio/client';
import { memoryGraphActivities } from './memorygraph';
import { openMemoryActivities } from './openmemory';
import { qdrantRebuildActivities } from './qdrant-rebuild';
import { secondBrainActivities } from './second-brain';
import { sqliteVecActivities } from './sqlite-vec';

export interface ActivityDeps {
  /** Lets the copy activity query and signal its own workflow. */
  client: Client;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...sqliteVecActivities(deps),
    ...qdrantRebuildActivities(deps),
    ...openMemoryActivities,
    ...secondBrainActivities(deps),
    ...memoryGraphActivities(deps),
  };
}
