/**
 * A rollback's only write to v2: memories written in v3 after cutover,
 * carried back as v2 rows (the layout the source has). v3-only fields ride in
 * v2 metadata where v2 has no column (tags in the plan's tags field, a title
 * that is not the content's first line, a memory_type v2.8's enum lacks);
 * v2.8's own columns come back from where the copy kept them. A v2 row the
 * service changed after `unchangedUntil` is left as it is and reported.
 */
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import { inTransaction } from './databases';
import type { MemoryPoint } from '../stores/contract';
import type { V2Columns, V2Watermark, V3Mapping } from './v2-source';
import { isObject, memoryTypeOf, sameFloat32Vector, tagsOf, titleOf, V2_EXTRAS_KEY, type V3Memory } from './v3-memory';

const V28_MEMORY_TYPES = ['semantic', 'episodic', 'procedural'];

export interface WriteBack {
  updated: number;
  inserted: number;
  skipped: string[];
}

export async function writeBackV2Rows(
  pool: pg.Pool,
  columns: V2Columns,
  mapping: V3Mapping,
  points: MemoryPoint[],
  unchangedUntil: V2Watermark,
): Promise<WriteBack> {
  const result: WriteBack = { updated: 0, inserted: 0, skipped: [] };
  const v28 = columns.shape.layout === 'v2.8';
  const ts = (param: string) => columns.fromIso(param);
  const names = ['id', 'content', 'metadata', 'embedding', 'created_at', 'updated_at'];
  const values = ['$1::uuid', '$2', '$3::jsonb', '$4::vector', ts('$5'), ts('$6')];
  if (v28) {
    names.push('memory_type', 'importance_score', 'access_count', 'last_accessed', 'semantic_metadata', 'episodic_metadata', 'procedural_metadata', 'consolidation_score', 'last_consolidated', 'decay_applied');
    values.push('$8::memory_type_enum', '$9', '$10', ts('$11'), '$12::jsonb', '$13::jsonb', '$14::jsonb', '$15', `coalesce(${ts('$16')}, now())`, '$17');
  }
  const sql = `INSERT INTO memories AS m (${names.join(', ')}) VALUES (${values.join(', ')})
    ON CONFLICT (id) DO UPDATE SET ${names.slice(1).map((n) => `${n} = EXCLUDED.${n}`).join(', ')}
    WHERE ${columns.changedAt().replace(/\b(created_at|updated_at|last_accessed)\b/g, 'm.$1')} <= $7::timestamptz
    RETURNING (xmax = 0) AS inserted`;
  await inTransaction(pool, async (client) => {
    for (const point of points) {
      const memory = point.payload as unknown as V3Memory;
      const { metadata, extras } = v2MetadataOf(memory, mapping);
      const params: unknown[] = [
        point.id,
        memory.content,
        JSON.stringify(metadata),
        point.vector.length ? `[${point.vector.join(',')}]` : null,
        memory.created_at,
        memory.updated_at,
        unchangedUntil.at,
      ];
      if (v28) {
        params.push(
          V28_MEMORY_TYPES.includes(memory.memory_type) ? memory.memory_type : 'semantic',
          Math.min(1, Math.max(0, memory.importance_score)),
          memory.retrieval_count,
          memory.accessed_at,
          JSON.stringify(extras.semantic_metadata ?? {}),
          JSON.stringify(extras.episodic_metadata ?? {}),
          JSON.stringify(extras.procedural_metadata ?? {}),
          typeof extras.consolidation_score === 'number' ? extras.consolidation_score : 0.5,
          typeof extras.last_consolidated === 'string' ? extras.last_consolidated : null,
          typeof extras.decay_applied === 'boolean' ? extras.decay_applied : false,
        );
      }
      const { rows } = await client.query<{ inserted: boolean }>(sql, params);
      if (rows.length === 0) result.skipped.push(point.id);
      else if (rows[0].inserted) result.inserted++;
      else result.updated++;
    }
    await assertReadBack(client, points.filter((p) => !result.skipped.includes(p.id)));
  });
  return result;
}

function v2MetadataOf(memory: V3Memory, mapping: V3Mapping): { metadata: Record<string, unknown>; extras: Record<string, unknown> } {
  const { [V2_EXTRAS_KEY]: kept, ...rest } = isObject(memory.metadata) ? memory.metadata : { value: memory.metadata };
  const metadata: Record<string, unknown> = { ...rest };
  // v3 keeps tags in memory_tags; metadata's own list is kept when v3 has none for the memory (nothing lost either way).
  if (memory.tags.length && tagsOf(metadata, mapping.tagsField).join('\u0000') !== memory.tags.join('\u0000')) metadata[mapping.tagsField] = memory.tags;
  if (titleOf(memory.content, mapping.untitled) !== memory.title) metadata.title = memory.title;
  const typeKept = mapping.layout === 'v2.8' ? V28_MEMORY_TYPES.includes(memory.memory_type) : memoryTypeOf(null, metadata, mapping.defaultMemoryType) === memory.memory_type;
  if (!typeKept) metadata.memory_type = memory.memory_type;
  return { metadata, extras: isObject(kept) ? kept : {} };
}

/**
 * Reads the carried rows back inside the write's transaction: content and
 * embedding must be what v3 holds, or nothing is committed and the rollback
 * stops before switching back (names ids only).
 */
async function assertReadBack(client: pg.PoolClient, points: MemoryPoint[]): Promise<void> {
  if (points.length === 0) return;
  const { rows } = await client.query<{ id: string; content: string; embedding: string | null }>(
    'SELECT id::text AS id, content, embedding::text AS embedding FROM memories WHERE id = ANY($1::uuid[])',
    [points.map((p) => p.id)],
  );
  const stored = new Map(rows.map((r) => [r.id, r]));
  const wrong = points.filter((p) => {
    const row = stored.get(p.id);
    const vector = row?.embedding ? (JSON.parse(row.embedding) as number[]) : null;
    return !row || row.content !== (p.payload as unknown as V3Memory).content || !sameFloat32Vector(vector, p.vector.length ? p.vector : null);
  });
  if (wrong.length) {
    throw ApplicationFailure.nonRetryable(
      `Carrying v3 writes back into v2 did not read back equal for ${wrong.length} memories (${wrong.slice(0, 20).map((p) => p.id).join(', ')}); nothing of this batch was committed (v3 keeps them). Signal rollback again after checking those rows in v2.`,
      'CarryBackMismatch',
    );
  }
}
