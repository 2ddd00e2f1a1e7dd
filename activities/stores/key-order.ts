/**
 * The one order point ids are compared in, so that two stores can be read
 * side by side and merged: Qdrant's (integer ids first, numerically; then
 * uuids by their bytes, which for canonical lowercase hex is string order).
 * PostgreSQL's `uuid` order is the same byte order.
 */
import type { IdRange } from '../../workflows/messages';

const INTEGER_ID = /^\d+$/;

export function compareIds(a: string, b: string): number {
  const [intA, intB] = [INTEGER_ID.test(a), INTEGER_ID.test(b)];
  if (intA && intB) return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  if (intA) return -1;
  if (intB) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether an id lies before the end of `range` (the start is where reading begins). */
export const beforeEnd = (id: string, range: IdRange) => range.to === null || compareIds(id, range.to) < 0;

export const inIdRange = (id: string, range: IdRange) => (range.from === null || compareIds(id, range.from) >= 0) && beforeEnd(id, range);

/** `range` cut into `parts` ranges of equal width in uuid space (ids are uniform hashes, so of about equal size). */
export function splitIdRange(range: IdRange, parts: number): IdRange[] {
  const [from, to] = [range.from === null ? 0n : uuidValue(range.from), range.to === null ? 1n << 128n : uuidValue(range.to)];
  const bounds = Array.from({ length: parts - 1 }, (_, i) => uuidOf(from + ((to - from) * BigInt(i + 1)) / BigInt(parts)));
  return [range.from, ...bounds].map((start, i) => ({ index: range.index, from: start, to: bounds[i] ?? range.to }));
}

const uuidValue = (id: string) => BigInt(`0x${id.replace(/-/g, '')}`);

function uuidOf(value: bigint): string {
  const hex = value.toString(16).padStart(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
