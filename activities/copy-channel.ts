/**
 * The copy activity's line to its own workflow: it queries `copyControl`
 * (pause, batch size, concurrency — no history written) and, rarely, signals
 * `copyProgress` so `status` and the Web UI's summary stay roughly current
 * (see copy-engine.ts for the schedule; live progress is in the heartbeat).
 */
import type { Client } from '@temporalio/client';
import { copyControlQuery, copyProgressSignal } from '../workflows/messages';
import { currentWorkflow } from './context';
import type { CopyChannel } from './copy-engine';

/**
 * For one range of a partitioned copy: the same control (so pause and live
 * settings reach every range), but no progress signals — with many ranges
 * they would add up; the workflow counts finished ranges and each range's
 * live progress is in its heartbeat.
 */
export function rangeCopyChannel(client: Client): CopyChannel {
  const { control } = workflowCopyChannel(client);
  return { control, report: async () => {} };
}

/** For a catch-up: short, and run inside cutover too, so a pause must not hold a switch half done; no progress signals. */
export function catchUpCopyChannel(client: Client): CopyChannel {
  const { control } = workflowCopyChannel(client);
  return { control: async () => ({ ...(await control()), paused: false }), report: async () => {} };
}

export function workflowCopyChannel(client: Client): CopyChannel {
  const { workflowId, runId } = currentWorkflow();
  const workflow = client.workflow.getHandle(workflowId, runId);
  return {
    control: () => workflow.query(copyControlQuery),
    report: (progress) => workflow.signal(copyProgressSignal, progress),
  };
}
