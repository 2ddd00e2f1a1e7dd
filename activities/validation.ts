/**
 * The validation report every runbook produces before approval: exact totals,
 * per-user counts, and sampled points compared field by field. It names
 * point ids and field names only, never contents.
 */
import type { CheckResult, ValidationReport } from '../workflows/messages';
import { sameJson } from './compare';
import { MIN_COSINE, cosine } from './copy-engine';
import type { MemoryPoint, PointTarget } from './stores/contract';

const MAX_ERRORS = 20;
const MAX_USERS = 200;
/** Seconds-based timestamps must agree within 1 ms. */
const TIMESTAMP_FIELDS = new Set(['created_at', 'updated_at', 'deleted_at']);
const TIMESTAMP_TOLERANCE_S = 0.001;

export interface PerUserCount {
  user: string | null;
  n: number;
}

export async function comparePerUser(
  sourceCounts: PerUserCount[],
  countInTarget: (user: string) => Promise<number>,
): Promise<ValidationReport['perUser']> {
  const rows: ValidationReport['perUser'] = [];
  for (const { user, n } of sourceCounts.filter((c) => c.user !== null).slice(0, MAX_USERS)) {
    rows.push({ user: user!, source: n, target: await countInTarget(user!) });
  }
  return rows;
}

export interface SampleComparison {
  sampled: number;
  minCosine: number | null;
  errors: string[];
}

export async function compareSamples(
  expected: MemoryPoint[],
  target: PointTarget,
  options: { vectorsCopied: boolean },
): Promise<SampleComparison> {
  const actual = new Map((await target.retrieve(expected.map((p) => p.id))).map((p) => [p.id, p]));
  const errors: string[] = [];
  let minCosine: number | null = null;
  for (const point of expected) {
    const stored = actual.get(point.id);
    if (!stored) {
      errors.push(`${point.id}: missing from target`);
      continue;
    }
    if (options.vectorsCopied) {
      const similarity = cosine(point.vector, stored.vector);
      minCosine = minCosine === null ? similarity : Math.min(minCosine, similarity);
      if (point.vector.length !== stored.vector.length || similarity < MIN_COSINE) {
        errors.push(`${point.id}: embedding mismatch (cosine ${similarity.toFixed(4)})`);
      }
    }
    const fields = differingFields(point.payload, stored.payload);
    if (fields.length) errors.push(`${point.id}: ${fields.join(', ')} differ`);
  }
  return { sampled: expected.length, minCosine, errors };
}

/** Tags compare as sets, timestamps within 1 ms, everything else by activities/compare.ts' rules. */
function differingFields(expected: Record<string, unknown>, actual: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...keys].filter((key) => {
    const [a, b] = [expected[key], actual[key]];
    if (key === 'tags' && Array.isArray(a) && Array.isArray(b)) {
      return !sameJson([...new Set(a)].sort(), [...new Set(b)].sort());
    }
    if (TIMESTAMP_FIELDS.has(key) && typeof a === 'number' && typeof b === 'number') {
      return Math.abs(a - b) > TIMESTAMP_TOLERANCE_S;
    }
    return !sameJson(a, b);
  });
}

export function buildReport(input: {
  sourceCount: number;
  targetCount: number;
  perUser: ValidationReport['perUser'];
  samples: SampleComparison;
}): ValidationReport {
  const { sourceCount, targetCount, perUser, samples } = input;
  const userMismatches = perUser.filter((u) => u.source !== u.target);
  const checks: CheckResult[] = [
    {
      name: 'count',
      ok: sourceCount === targetCount,
      detail: `source ${sourceCount}, target ${targetCount}`,
    },
    {
      name: 'per-user counts',
      ok: userMismatches.length === 0,
      detail: userMismatches.length
        ? `${userMismatches.length} users differ: ${userMismatches.slice(0, 5).map((u) => `${u.user} ${u.target}/${u.source}`).join(', ')}`
        : `${perUser.length} users match`,
    },
    {
      name: 'sampled points',
      ok: samples.errors.length === 0,
      detail: `${samples.sampled} sampled, ${samples.errors.length} differ${samples.minCosine === null ? '' : `, min cosine ${samples.minCosine.toFixed(4)} (threshold ${MIN_COSINE})`}`,
    },
  ];
  return {
    ok: checks.every((c) => c.ok),
    sourceCount,
    targetCount,
    perUser,
    sampled: samples.sampled,
    minCosine: samples.minCosine,
    checks,
    errors: samples.errors.slice(0, MAX_ERRORS),
  };
}
