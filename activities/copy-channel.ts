/**
 * The copy activity's line to its own workflow: it queries `copyControl`
 * (pause, batch size, concurrency — no history written) and signals
 * `copyProgress` every couple of seconds so `status` shows rate and ETA.
 */
import type { Client } from '@temporalio/client';
import { copyControlQuery, copyProgressSignal } from '../workflows/messages';
import { currentWorkflow } from './context';
import type { CopyChannel } from './copy-engine';

export function workflowCopyChannel(client: Client): CopyChannel {
  const { workflowId, runId } = currentWorkflow();
  const workflow = client.workflow.getHandle(workflowId, runId);
  return {
    control: () => workflow.query(copyControlQuery),
    report: (progress) => workflow.signal(copyProgressSignal, progress),
  };
}
