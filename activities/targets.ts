/**
 * A migration target — a Qdrant collection or a pgvector table — behind one
 * face: describe it, create it, drop it, and read/write points through it.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { IdRange } from '../workflows/messages';
import type { TargetSpec } from '../workflows/plan-schemas';
import { describeTarget as nameTarget } from '../workflows/plan-schemas';
import type { CountsByPayload, DigestedPoint, MemoryPoint, PointSource, PointTarget } from './stores/contract';
import { PgvectorTable } from './stores/postgres';
import { QdrantCollection } from './stores/qdrant';

export interface TargetState {
  exists: boolean;
  dimensions: number | null;
  points: number;
}

export interface TargetStore extends PointSource, PointTarget, CountsByPayload {
  describe(): Promise<TargetState>;
  create(dimensions: number): Promise<void>;
  drop(): Promise<void>;
  /** Ids only, a page at a time, with readPage's cursors: for scans that need no point. */
  readIds(cursor: string | null, limit: number): Promise<{ ids: string[]; next: string | null }>;
  /** Removes these points; ids that are absent are ignored. */
  deletePoints(ids: string[]): Promise<void>;
  /** The points with ids in `range`, in id order, a page at a time (exhaustive validation). */
  streamIdRange(range: IdRange, pageSize: number): AsyncGenerator<MemoryPoint[]>;
  /** The same as digests of the stored bytes, by a store that can hash them itself (pgvector: stores/pgvector-digest.ts). */
  streamDigestsInIdRange?(range: IdRange, pageSize: number): AsyncGenerator<DigestedPoint[]>;
}

export function openTarget(spec: TargetSpec): TargetStore {
  return spec.kind === 'pgvector' ? new PgvectorTable(spec) : new QdrantCollection(spec.url, spec.collection);
}

export type ExistingTargetPolicy = 'refuse' | 'resume' | 'overwrite';

/** Refuses a target that holds data or has the wrong vector size, unless the plan allows it. */
export function assertTargetUsable(spec: TargetSpec, state: TargetState, dimensions: number, policy: ExistingTargetPolicy): void {
  const name = nameTarget(spec);
  if (state.exists && state.dimensions !== null && state.dimensions !== dimensions && policy !== 'overwrite') {
    throw ApplicationFailure.nonRetryable(
      `Target ${name} has ${state.dimensions}-dim vectors but the copy writes ${dimensions}-dim ones; use a new target or existingTarget: 'overwrite'.`,
      'DimensionMismatch',
    );
  }
  if (state.points > 0 && policy === 'refuse') {
    throw ApplicationFailure.nonRetryable(
      `Target ${name} already holds ${state.points} points; nothing was written. Set existingTarget to 'resume' (keep and upsert) or 'overwrite' (drop and recreate).`,
      'TargetNotEmpty',
    );
  }
}

/** Creates the target (dropping it first under 'overwrite'); returns whether it was created. */
export async function prepareTargetStore(spec: TargetSpec, dimensions: number, policy: ExistingTargetPolicy): Promise<{ created: boolean; kept: number }> {
  const target = openTarget(spec);
  try {
    const state = await target.describe();
    assertTargetUsable(spec, state, dimensions, policy);
    if (state.exists && policy === 'overwrite') await target.drop();
    if (state.exists && policy !== 'overwrite') return { created: false, kept: state.points };
    await target.create(dimensions);
    return { created: true, kept: 0 };
  } finally {
    await target.close();
  }
}

export async function dropTargetStore(spec: TargetSpec): Promise<void> {
  const target = openTarget(spec);
  try {
    await target.drop();
  } finally {
    await target.close();
  }
}
