/**
 * How a Second Brain v2 memory becomes a v3 one, in one place: the v3 fields
 * (title, owner, tags, …), the MemoryCreated event's id and data, the user
 * rows' ids. Both the copy and validation use these, so what is written and
 * what is checked cannot drift apart.
 *
 * A point's payload is the v3 memory as memshift compares it: the `memories`
 * columns (timestamps as ISO strings to the microsecond), the tag names, and
 * two verdicts the target computes when it reads a memory back: whether its
 * one MemoryCreated event is there with the expected data, and whether the
 * JSON `embedding` column holds the same vector as `embedding_vector`.
 */
import { v5 as uuidv5 } from 'uuid';
import type { MemoryPoint } from '../stores/contract';
import { sameJson } from '../compare';
import { MEMORY_TYPE_MAX_LENGTH, SOURCE_URL_MAX_LENGTH, TAG_NAME_MAX_LENGTH, TITLE_MAX_LENGTH } from './v3-schema';

/** memshift's uuid v5 namespace for Second Brain ids (users, tags, events). */
const NAMESPACE = uuidv5('https://github.com/raold/second-brain#memshift', uuidv5.URL);

export const EVENT_TYPE = 'MemoryCreated';
export const EVENT_OK = 'MemoryCreated/1';
export const EMBEDDING_JSON_OK = 'same as embedding_vector';
/** Where v2.8's columns without a v3 column are kept, in v3 `metadata`. */
export const V2_EXTRAS_KEY = 'second_brain_v2';

export const userIdFor = (email: string) => uuidv5(`user:${email.toLowerCase()}`, NAMESPACE);
export const tagIdFor = (userId: string, name: string) => uuidv5(`tag:${userId}:${name}`, NAMESPACE);
/** Deterministic, so a retried batch rewrites the same event instead of adding a second one. */
export const eventIdFor = (memoryId: string) => uuidv5(`event:${memoryId}:${EVENT_TYPE}:1`, NAMESPACE);
export const correlationIdFor = (workflowId: string) => uuidv5(`run:${workflowId}`, NAMESPACE);

/** The v3 memory columns memshift writes, as the payload carries them. */
export interface V3Memory {
  user_id: string;
  title: string;
  content: string;
  memory_type: string;
  status: string;
  importance_score: number;
  confidence_score: number;
  source_url: string | null;
  embedding_model: string | null;
  metadata: unknown;
  created_at: string;
  updated_at: string;
  accessed_at: string;
  retention_strength: number;
  retrieval_count: number;
  attachments: unknown;
  tags: string[];
}

export type V3Payload = V3Memory & { event: string; embedding_json: string };

/** First non-blank line of the content, trimmed, cut to the column's 500 characters; never empty. */
export function titleOf(content: string, untitled: string): string {
  const line = content.split(/\r\n|\r|\n/).map((l) => l.trim()).find((l) => l.length > 0);
  return cut(line ?? untitled, TITLE_MAX_LENGTH);
}

/** Cut by code points, as VARCHAR(n) counts, never splitting a surrogate pair. */
export function cut(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join('').trimEnd();
}

/** Tag names from metadata: an array of strings or a comma-separated string; trimmed, cut, unique, sorted. */
export function tagsOf(metadata: unknown, field: string): string[] {
  const raw = isObject(metadata) ? metadata[field] : undefined;
  const names = Array.isArray(raw) ? raw.filter((t): t is string => typeof t === 'string') : typeof raw === 'string' ? raw.split(',') : [];
  return [...new Set(names.map((t) => cut(t.trim(), TAG_NAME_MAX_LENGTH)).filter(Boolean))].sort();
}

export function memoryTypeOf(v28Type: string | null, metadata: unknown, fallback: string): string {
  if (v28Type) return v28Type;
  const named = isObject(metadata) ? metadata.memory_type : undefined;
  return typeof named === 'string' && named.length > 0 && named.length <= MEMORY_TYPE_MAX_LENGTH ? named : fallback;
}

export function sourceUrlOf(metadata: unknown): string | null {
  if (!isObject(metadata)) return null;
  const url = metadata.source_url ?? metadata.url;
  return typeof url === 'string' && url.length > 0 && Array.from(url).length <= SOURCE_URL_MAX_LENGTH ? url : null;
}

/** The MemoryCreated event's data: the v3 memory as created, occurred_at its created_at. */
export function eventDataOf(memoryId: string, memory: V3Memory): Record<string, unknown> {
  return {
    memory_id: memoryId,
    user_id: memory.user_id,
    title: memory.title,
    content: memory.content,
    memory_type: memory.memory_type,
    status: memory.status,
    importance_score: memory.importance_score,
    confidence_score: memory.confidence_score,
    source_url: memory.source_url,
    embedding_model: memory.embedding_model,
    metadata: memory.metadata,
    tags: memory.tags,
    attachments: memory.attachments,
    created_at: memory.created_at,
    updated_at: memory.updated_at,
    accessed_at: memory.accessed_at,
    retention_strength: memory.retention_strength,
    retrieval_count: memory.retrieval_count,
    occurred_at: memory.created_at,
  };
}

/** What the target found for a memory's events: EVENT_OK, or what is wrong (no contents). */
export function eventVerdict(memoryId: string, memory: V3Memory, events: { id: string; type: string; stream_version: number; data: unknown }[]): string {
  if (events.length === 0) return 'no event';
  if (events.length > 1) return `${events.length} events`;
  const [event] = events;
  if (event.id !== eventIdFor(memoryId) || event.type !== EVENT_TYPE || event.stream_version !== 1) return 'another event';
  return sameJson(event.data, eventDataOf(memoryId, memory)) ? EVENT_OK : 'event data differs';
}

/** Float4 storage: the same vector when every component rounds to the same float. */
export function sameFloat32Vector(a: number[] | null, b: number[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x, i) => Math.fround(x) === Math.fround(b[i]));
}

export function toV3Point(id: string, vector: number[] | null, memory: V3Memory): MemoryPoint {
  const payload: V3Payload = { ...memory, event: EVENT_OK, embedding_json: EMBEDDING_JSON_OK };
  return { id, vector: vector ?? [], payload: payload as unknown as Record<string, unknown> };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
