/**
 * A digest of exactly the bytes a pgvector table stores for a point: its
 * payload as PostgreSQL prints jsonb, then its vector as pgvector sends it.
 * A source computes it from the point it would write (storedDigest), and
 * PostgreSQL from what it holds (STORED_DIGEST_SQL), so an exhaustive
 * comparison ships and compares 32 characters per point instead of two
 * parsed points. Equal digests mean the table holds the very bytes the
 * source's point makes. A difference is only a candidate: jsonb may print a
 * value differently from JavaScript (1e-7 as 0.0000001) or order keys that
 * JavaScript sorts differently, so differing points are read whole and
 * compared by the usual rules.
 */
import { hash } from 'node:crypto';

/** The same bytes, hashed by PostgreSQL from a row of `id uuid, embedding vector, payload jsonb`. */
export const STORED_DIGEST_SQL = `md5(convert_to(payload::text, 'UTF8') || vector_send(embedding))`;

/** `vector` is float32s, little-endian, as sqlite-vec stores them. */
export function storedDigest(payload: Record<string, unknown>, vector: Uint8Array): string {
  const text = jsonbText(payload);
  // One buffer for all the bytes, reused: this runs for every point of a pass, and allocation would cost more than hashing.
  const size = 3 * text.length + 4 + vector.byteLength;
  if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.max(size, 2 * scratch.length));
  let at = scratch.write(text, 0, 'utf8');
  at = scratch.writeUInt16BE(vector.byteLength / 4, at); // pgvector: dimensions, an unused int16, then big-endian float4s
  at = scratch.writeInt16BE(0, at);
  scratch.set(vector, at);
  scratch.subarray(at, at + vector.byteLength).swap32();
  return hash('md5', scratch.subarray(0, at + vector.byteLength), 'hex');
}

let scratch = Buffer.allocUnsafe(16_384);

/**
 * PostgreSQL's text output of a jsonb value: object keys by length, then
 * bytewise; ", " and ": " between items. Runs for every point of a pass, so
 * each object shape's key order is sorted once and kept.
 */
function jsonbText(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ', ') + jsonbText(value[i]);
    return `${text}]`;
  }
  const object = value as Record<string, unknown>;
  let text = '{';
  for (const [key, quoted] of keyOrder(Object.keys(object))) {
    const item = object[key];
    if (item === undefined) continue; // as JSON.stringify, which wrote the payload
    text += (text === '{' ? '' : ', ') + quoted + ': ' + jsonbText(item);
  }
  return `${text}}`;
}

const MAX_SHAPES = 1_000;
const keyOrders = new Map<string, [key: string, quoted: string][]>();

/** The shapes met last, most recent first: a pass meets the same few over and over. */
const recentShapes: { keys: string[]; order: [key: string, quoted: string][] }[] = [];
const RECENT_SHAPES = 8;

function keyOrder(keys: string[]): [key: string, quoted: string][] {
  // Comparing keys with a recent shape's costs less than building this object's shape string.
  for (const recent of recentShapes) if (sameKeys(recent.keys, keys)) return recent.order;
  const shape = keys.join('\u0000'); // jsonb refuses \u0000, so no key holds it
  let order = keyOrders.get(shape);
  if (!order) {
    const bytes = new Map(keys.map((key) => [key, Buffer.from(key)]));
    const sorted = [...keys].sort((a, b) => bytes.get(a)!.length - bytes.get(b)!.length || Buffer.compare(bytes.get(a)!, bytes.get(b)!));
    order = sorted.map((key) => [key, JSON.stringify(key)]);
    if (keyOrders.size < MAX_SHAPES) keyOrders.set(shape, order);
  }
  recentShapes.unshift({ keys, order });
  if (recentShapes.length > RECENT_SHAPES) recentShapes.pop();
  return order;
}

function sameKeys(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
