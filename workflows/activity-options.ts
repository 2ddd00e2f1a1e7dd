/**
 * How runbook workflows call activities, declared once. Activities are
 * imported as a type only: workflow code never loads them.
 */
import { ActivityCancellationType, proxyActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { MigrationPhase } from './search-attributes';

type Activities = ReturnType<typeof createActivities>;

/**
 * Every scheduled activity carries a one-line summary for the Web UI's
 * timeline and `temporal workflow describe`: the run's phase, the step in
 * words and, for a copy or validation range, which one. Built from names and
 * range numbers only, so it holds no endpoint, secret or memory content.
 */
export function proxySummarisedActivities(options: ActivityOptions): ReturnType<typeof proxyActivities<Activities>> {
  const activities = proxyActivities<Activities>(options);
  return new Proxy(activities, {
    get(target, name) {
      const activity = Reflect.get(target, name) as (typeof activities)[keyof Activities];
      if (typeof name !== 'string') return activity;
      return (...args: unknown[]) => activity.executeWithOptions({ summary: summaryOf(name, args) }, args as never);
    },
  });
}

function summaryOf(activityName: string, args: unknown[]): string {
  const phase = workflowInfo().typedSearchAttributes.get(MigrationPhase);
  const step = activityName.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  const range = args.find((arg): arg is { index: number } => typeof arg === 'object' && arg !== null && 'index' in arg && ('start' in arg || 'from' in arg));
  return `${phase ? `${phase}: ` : ''}${step}${range ? ` (range ${range.index})` : ''}`;
}

/** Preflight, backup, validation, cutover: bounded steps; refusals are non-retryable failures. */
export const quickActivities = proxySummarisedActivities({
  startToCloseTimeout: '30m',
  retry: { maximumAttempts: 5 },
});

/**
 * Copies and scans: long and heartbeating. A dead worker is noticed within the heartbeat timeout and the retry resumes from the last heartbeat.
 * A cancelled one is waited for, so it never writes behind the back of what runs next (e.g. a catch-up cut short by an approval).
 */
export const longActivities = proxySummarisedActivities({
  startToCloseTimeout: '7d',
  heartbeatTimeout: '10s',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});
