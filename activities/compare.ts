/**
 * How memshift decides that a value survived a store: strings, ids, booleans
 * and integers exactly; floats as numbers. Stores re-serialize floats — Qdrant
 * 1.19 parses JSON with serde_json's fast float parser, so a float that needs
 * 17 significant digits may come back as the neighbouring double
 * (1700000000.8524659 → 1700000000.852466) — so two non-integer numbers are
 * equal when they differ by at most FLOAT_RELATIVE_TOLERANCE of their size
 * (1e-15 relative: 4.5 to 9 ulps of a double). Object keys compare unordered
 * (jsonb reorders them); arrays in order.
 */
import { createHash } from 'node:crypto';

export const FLOAT_RELATIVE_TOLERANCE = 1e-15;
/** Fingerprints round floats to this many significant digits, far coarser than the tolerance. */
const FINGERPRINT_DIGITS = 12;

export function sameNumber(a: number, b: number): boolean {
  if (a === b) return true;
  if (Number.isInteger(a) && Number.isInteger(b)) return false;
  return Math.abs(a - b) <= FLOAT_RELATIVE_TOLERANCE * Math.max(Math.abs(a), Math.abs(b));
}

/** Deep equality of JSON values under the rules above. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return sameNumber(a, b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
  }
  return a === b;
}

/** Top-level payload fields whose values differ (names only: reports never carry contents). */
export function differingFields(expected: Record<string, unknown>, actual: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...keys].filter((key) => !sameJson(expected[key], actual[key]));
}

/** JSON with sorted object keys, so stores that reorder keys (jsonb) give the same text. */
export function canonicalJson(value: unknown, number: (n: number) => number = (n) => n): string {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v === 'number') return number(v);
    return isObject(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v;
  });
}

/**
 * A short digest for diffing large sets cheaply. Identical payloads give equal
 * digests, and so, almost always, do payloads equal within the tolerance
 * (floats are rounded far beyond it first); but a float sitting on a rounding
 * boundary can make equal payloads differ, so a digest
 * mismatch is only a candidate: confirm it with sameJson before calling it a change.
 */
export function payloadFingerprint(payload: unknown): string {
  const rounded = (n: number) => (Number.isInteger(n) ? n : Number(n.toPrecision(FINGERPRINT_DIGITS)));
  return createHash('sha1').update(canonicalJson(payload, rounded)).digest('base64');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
