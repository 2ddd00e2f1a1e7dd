/**
 * How runbook workflows call activities, declared once. Activities are
 * imported as a type only: workflow code never loads them.
 */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';

type Activities = ReturnType<typeof createActivities>;

/** Preflight, backup, validation, cutover: bounded steps; refusals are non-retryable failures. */
export const quickActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30m',
  retry: { maximumAttempts: 5 },
});

/**
 * Copies and scans: long and heartbeating. A dead worker is noticed within the heartbeat timeout and the retry resumes from the last heartbeat.
 * A cancelled one is waited for, so it never writes behind the back of what runs next (e.g. a catch-up cut short by an approval).
 */
export const longActivities = proxyActivities<Activities>({
  startToCloseTimeout: '7d',
  heartbeatTimeout: '10s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});
