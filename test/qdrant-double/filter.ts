/**
 * Qdrant's filter language, the part memshift uses: must / should / must_not
 * over field conditions with match value / any / except, has_id and nested
 * filters. Anything else is refused loudly rather than silently matched.
 */
import { notSupported, formatError } from './errors';
import { parsePointId, type StoredPoint } from './points';

interface Filter {
  must?: Condition | Condition[];
  should?: Condition | Condition[];
  must_not?: Condition | Condition[];
}

interface FieldCondition {
  key: string;
  match?: { value?: unknown; any?: unknown[]; except?: unknown[] };
}

type Condition = Filter | FieldCondition | { has_id: unknown[] };

export function matchesFilter(point: StoredPoint, filter: unknown): boolean {
  if (filter === undefined || filter === null) return true;
  if (typeof filter !== 'object') throw formatError('"filter" must be an object');
  const { must, should, must_not: mustNot } = filter as Filter;
  const all = (conditions: Condition | Condition[] | undefined) => toList(conditions).every((c) => matchesCondition(point, c));
  const shouldList = toList(should);
  return (
    all(must) &&
    (shouldList.length === 0 || shouldList.some((c) => matchesCondition(point, c))) &&
    toList(mustNot).every((c) => !matchesCondition(point, c))
  );
}

function toList(conditions: Condition | Condition[] | undefined): Condition[] {
  if (conditions === undefined || conditions === null) return [];
  return Array.isArray(conditions) ? conditions : [conditions];
}

function matchesCondition(point: StoredPoint, condition: Condition): boolean {
  if ('key' in condition) return matchesField(point, condition);
  if ('has_id' in condition) return condition.has_id.map(parsePointId).includes(point.id);
  if ('must' in condition || 'should' in condition || 'must_not' in condition) return matchesFilter(point, condition);
  throw notSupported(`filter condition ${JSON.stringify(condition)}`);
}

function matchesField(point: StoredPoint, condition: FieldCondition): boolean {
  const match = condition.match;
  if (!match) throw notSupported(`field condition without "match" on "${condition.key}"`);
  // A payload array matches when any of its elements does, as in Qdrant.
  const values = valuesAt(point.payload, condition.key);
  if ('value' in match) return values.some((v) => v === match.value);
  if (Array.isArray(match.any)) return values.some((v) => match.any!.includes(v));
  if (Array.isArray(match.except)) return values.length > 0 && values.every((v) => !match.except!.includes(v));
  throw notSupported(`match ${JSON.stringify(match)}`);
}

/** Values at a dotted payload path, with arrays flattened. */
export function valuesAt(payload: Record<string, unknown>, key: string): unknown[] {
  let current: unknown[] = [payload];
  for (const part of key.split('.')) {
    current = current
      .map((value) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined))
      .filter((value) => value !== undefined)
      .flatMap((value) => (Array.isArray(value) ? value : [value]));
  }
  return current;
}
