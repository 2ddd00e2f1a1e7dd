import { Context } from '@temporalio/activity';

/** The workflow this activity runs for; memshift activities only run inside one. */
export function currentWorkflow(): { workflowId: string; runId: string } {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw new Error('memshift activities run only inside a migration workflow');
  return execution;
}
