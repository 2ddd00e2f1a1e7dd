/**
 * The validation report every runbook produces before approval: exact totals,
 * per-user counts, and sampled points compared field by field. It names
 * point ids and field names only, never contents.
 */
import type { CheckResult, ExhaustiveComparison, ValidationReport } from '../workflows/messages';
import { sameJson } from './compare';
import { MIN_COSINE, cosine } from './copy-engine';
import type { DigestedPoint, MemoryPoint, PointTarget } from './stores/contract';
import { compareIds } from './stores/key-order';

const MAX_ERRORS = 20;
const PROGRESS_INTERVAL_MS = 2_000;
/** Ids named per kind of mismatch in an exhaustive comparison; the counts are exact. */
export const MAX_NAMED_IDS = 20;
/** Stored vectors agree with the source's to float32 rounding (Qdrant also normalizes cosine vectors). */
const VECTOR_TOLERANCE = 1e-6;
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
  countsInTarget: (users: string[]) => Promise<Map<string, number>>,
): Promise<ValidationReport['perUser']> {
  const compared = sourceCounts.filter((c): c is { user: string; n: number } => c.user !== null).slice(0, MAX_USERS);
  const inTarget = await countsInTarget(compared.map((c) => c.user));
  return compared.map(({ user, n }) => ({ user, source: n, target: inTarget.get(user) ?? 0 }));
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

/** The errors naming these points (compareSamples starts each error with its point's id). */
export function errorsAbout(errors: string[], ids: Set<string>): string[] {
  return errors.filter((error) => ids.has(error.slice(0, error.indexOf(':'))));
}

/** Tags compare as sets, timestamps within 1 ms, everything else by activities/compare.ts' rules. */
function differingFields(expected: Record<string, unknown>, actual: Record<string, unknown>): string[] {
  const differing = Object.keys(expected).filter((key) => fieldDiffers(key, expected[key], actual[key]));
  for (const key of Object.keys(actual)) {
    if (!Object.hasOwn(expected, key) && fieldDiffers(key, undefined, actual[key])) differing.push(key);
  }
  return differing;
}

function fieldDiffers(key: string, a: unknown, b: unknown): boolean {
  if (sameJson(a, b)) return false; // the common case, without sorting tags
  if (key === 'tags' && Array.isArray(a) && Array.isArray(b)) {
    return !sameJson([...new Set(a)].sort(), [...new Set(b)].sort());
  }
  if (TIMESTAMP_FIELDS.has(key) && typeof a === 'number' && typeof b === 'number') {
    return Math.abs(a - b) > TIMESTAMP_TOLERANCE_S;
  }
  return true;
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

/** A point as a side of an exhaustive comparison streams it: whole, or as a digest where both sides can. */
export type StreamedPoint = MemoryPoint | DigestedPoint;

/** How one runbook judges a pair of points in an exhaustive comparison. */
export interface ExhaustiveRules {
  /** Dense vectors copied as they are (false when re-embedded: then not compared). */
  vectorsCopied: boolean;
  /**
   * Whether a write to the source after the recorded watermark explains this
   * difference (the point added, changed or deleted since): reported, never a
   * failure. `source`/`target` are undefined where that side lacks the id.
   */
  writtenSince(source: MemoryPoint | undefined, target: MemoryPoint | undefined): boolean | Promise<boolean>;
  /** A runbook's own per-point check (e.g. the bm25 vector computed from the text); null when fine. */
  extraProblem?(source: MemoryPoint, target: MemoryPoint): string | null;
  /** Reads a DigestedPoint whole, where its digest differs from the other side's (undefined: gone since it was streamed). */
  whole?: {
    source(point: DigestedPoint): MemoryPoint | undefined | Promise<MemoryPoint | undefined>;
    target(point: DigestedPoint): Promise<MemoryPoint | undefined>;
  };
  /** Words after the differing payload fields' names (e.g. which verdict a computed field gave); names and ids only. */
  payloadDetail?(fields: string[], target: MemoryPoint): string;
}

/**
 * Every point of one id range, both sides streamed in id order and merged:
 * ids only on one side are missing or extra, ids on both are compared by
 * payload (canonically: tags as sets, timestamps within 1 ms, numbers as
 * activities/compare.ts says) and by vector within the float bound. Sides
 * that can stream digests of the target's stored bytes (DigestedPoint) are
 * compared by digest, and read whole (`rules.whole`) only where the digests
 * differ. Holds one page per side; names ids only, capped. `onPage` (the
 * activity's heartbeat) runs at each source page and every
 * PROGRESS_INTERVAL_MS besides.
 */
export async function compareEveryPoint(
  source: AsyncIterable<StreamedPoint[]>,
  target: AsyncIterable<StreamedPoint[]>,
  rules: ExhaustiveRules,
  onPage: (compared: number) => void,
): Promise<ExhaustiveComparison & { problems: string[] }> {
  const started = Date.now();
  const result = { compared: 0, equal: 0, missing: 0, extra: 0, different: 0, writtenSince: 0, missingIds: [] as string[], extraIds: [] as string[], differentIds: [] as string[], problems: [] as string[] };
  const fromSource = new PageCursor(source, () => onPage(result.compared));
  const fromTarget = new PageCursor(target, () => {});
  // Also while a page is slow to come (a range's first, after seconds of sorting; a loaded store): a
  // heartbeat timeout would start another attempt beside this one, and the two would slow each other.
  const ticking = setInterval(() => onPage(result.compared), PROGRESS_INTERVAL_MS);
  const name = (ids: string[], id: string) => ids.length < MAX_NAMED_IDS && ids.push(id);
  const whole = async (point: StreamedPoint | undefined, side: 'source' | 'target') => {
    if (!point || !('digest' in point)) return point;
    if (!rules.whole) throw new Error(`compareEveryPoint: the ${side} streams digests, but the rules cannot read its points whole`);
    return rules.whole[side](point);
  };
  try {
    for (;;) {
      if (fromSource.atPageEnd() || fromTarget.atPageEnd()) await Promise.all([fromSource.ready(), fromTarget.ready()]);
      const [s, t] = [fromSource.current(), fromTarget.current()];
      if (!s && !t) break;
      const order = !s ? 1 : !t ? -1 : compareIds(s.id, t.id);
      const [inSource, inTarget] = [order <= 0 ? s : undefined, order >= 0 ? t : undefined];
      const id = (inSource ?? inTarget)!.id;
      result.compared++;
      if (inSource) fromSource.advance();
      if (inTarget) fromTarget.advance();
      if (inSource && inTarget && 'digest' in inSource && 'digest' in inTarget && inSource.digest === inTarget.digest) {
        result.equal++;
        continue;
      }
      const [expected, actual] = await Promise.all([whole(inSource, 'source'), whole(inTarget, 'target')]);
      if (!expected && !actual) {
        result.writtenSince++; // the source's row is gone since this pass read it, and the target lacks it too
        continue;
      }
      const problem = !actual ? 'missing from target' : !expected ? 'in target but not in source' : pointDifference(expected, actual, rules);
      if (problem === null) result.equal++;
      else if (await rules.writtenSince(expected, actual)) result.writtenSince++;
      else {
        const kind = !actual ? 'missing' : !expected ? 'extra' : 'different';
        result[kind]++;
        name(result[`${kind}Ids`], id);
        if (result.problems.length < MAX_NAMED_IDS) result.problems.push(`${id}: ${problem}`);
      }
    }
  } finally {
    clearInterval(ticking);
    // A pass that stops early (a store failed) still ends both streams: the source's holds a thread and a connection.
    fromSource.close();
    fromTarget.close();
  }
  return { ...result, seconds: (Date.now() - started) / 1000, ranges: 1 };
}

/**
 * One side of the merge: the page being compared, and the next one already
 * requested, so a store's round trip overlaps the comparing. Waits only at
 * page ends.
 */
class PageCursor {
  private page: StreamedPoint[] = [];
  private at = 0;
  private next: Promise<IteratorResult<StreamedPoint[]>>;
  private done = false;
  private readonly pages: AsyncIterator<StreamedPoint[]>;

  constructor(pages: AsyncIterable<StreamedPoint[]>, private readonly fetched: () => void) {
    this.pages = pages[Symbol.asyncIterator]();
    this.next = this.pages.next();
  }

  async ready(): Promise<void> {
    while (!this.done && this.at >= this.page.length) {
      const result = await this.next;
      if (result.done) {
        this.done = true;
        return;
      }
      [this.page, this.at] = [result.value, 0];
      this.next = this.pages.next();
      this.fetched();
    }
  }

  /** Whether ready() may have to wait: checked first, so the points inside a page cost no promises. */
  atPageEnd(): boolean {
    return this.at >= this.page.length;
  }

  current(): StreamedPoint | undefined {
    return this.page[this.at];
  }

  advance(): void {
    this.at++;
  }

  /** Ends the stream (runs its cleanup) once the page in flight has come; a stream already done is unaffected. */
  close(): void {
    this.pages.return?.().catch(() => undefined);
  }
}

/**
 * Both points are at hand, so payloads are compared canonically value by
 * value (activities/compare.ts' rules) rather than by digest: the same
 * verdict a fingerprint gives once confirmed, at a seventh of the cost.
 */
function pointDifference(expected: MemoryPoint, actual: MemoryPoint, rules: ExhaustiveRules): string | null {
  const fields = differingFields(expected.payload, actual.payload);
  if (fields.length) return `payload ${fields.join(', ')} differ${rules.payloadDetail?.(fields, actual) ?? ''}`;
  if (rules.vectorsCopied && !sameVector(expected.vector, actual.vector)) return 'vector differs';
  return rules.extraProblem?.(expected, actual) ?? null;
}

/** Equal value by value within the float bound, or (stores that normalize) in direction. */
function sameVector(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  let i = 0;
  // Plain loops: this runs for every dimension of every point (no closures, no spread arguments).
  while (i < a.length && (a[i] === b[i] || Math.abs(a[i] - b[i]) <= VECTOR_TOLERANCE * Math.max(1, Math.abs(a[i])))) i++;
  if (i === a.length) return true;
  const [na, nb] = [norm(a) || 1, norm(b) || 1];
  for (i = 0; i < a.length; i++) if (Math.abs(a[i] / na - b[i] / nb) > VECTOR_TOLERANCE) return false;
  return true;
}

function norm(vector: number[]): number {
  let sum = 0;
  for (const x of vector) sum += x * x;
  return Math.sqrt(sum);
}
