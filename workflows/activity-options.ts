/**
 * How runbook workflows call activities, declared once. Activities are
 * imported as a type only: workflow code never loads them.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';

type Activities = ReturnType<typeof createActivities>;

/** Preflight, backup, validation, cutover: bounded steps; refusals are non-retryable failures. */
export const quickActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30m',
  retry: { maximumAttempts: 5 },
});

/** Copies and scans: long and heartbeating. A dead worker is noticed within the heartbeat timeout and the retry resumes from the last heartbeat. */
export const longActivities = proxyActivities<Activities>({
  startToCloseTimeout: '7d',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});
