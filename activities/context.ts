import { Context } from '@temporalio/activity';

/** The workflow this activity runs for; memshift activities only run inside one. */
export function currentWorkflow(): { workflowId: string; runId: string } {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw new Error('memshift activities run only inside a migration workflow');
  return execution;
}

/**
 * Heartbeats every few seconds while `work` runs: one long call (a snapshot
 * recovery, a dump, a file read whole) reports no progress of its own.
 */
export async function heartbeatWhile<T>(work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 2_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
