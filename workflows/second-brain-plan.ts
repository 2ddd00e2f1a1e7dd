/**
 * The plan of `secondBrainV3Migration`: a Second Brain v2 database (and
 * optionally its v1 Qdrant collection) into a v3 database. Endpoints and
 * files only; credentials come from the worker's PGUSER/PGPASSWORD and
 * QDRANT_API_KEY.
 */
import { z } from 'zod';
import { ApprovalPlan, CatchUpWhileWaiting, CopyPlan, collectionName, duration, postgresUrl, qdrantUrl } from './plan-schemas';

/** The `users` row v3 needs: v2 has no users. Its id is derived from the email (uuid v5), so a retry never makes two. */
export const SecondBrainUser = z
  .object({
    email: z.string().email().max(255),
    username: z.string().min(1).max(100),
    fullName: z.string().min(1).max(255).optional(),
  })
  .strict();
export type SecondBrainUser = z.output<typeof SecondBrainUser>;

export const SecondBrainOwner = z.union([
  /** Every memory belongs to this one user. */
  z.object({ user: SecondBrainUser }).strict(),
  /** Each memory belongs to the user its `metadata[field]` names; a memory naming no listed user stops preflight. */
  z
    .object({
      metadataField: z.string().min(1),
      users: z.record(z.string().min(1), SecondBrainUser).refine((users) => Object.keys(users).length > 0, 'name at least one user'),
    })
    .strict(),
]);
export type SecondBrainOwner = z.output<typeof SecondBrainOwner>;

export const SecondBrainPlan = z
  .object({
    source: z
      .object({
        /** The v2 database (v2.0 or v2.8 layout, detected). Only read, except by a rollback carrying post-cutover writes back. */
        url: postgresUrl,
        /** v2.0 keeps TIMESTAMP without time zone: the zone its server wrote them in. */
        timestampsZone: z.string().regex(/^[A-Za-z0-9_+\-/]{1,64}$/, 'must be a time zone name such as UTC or Europe/Berlin').default('UTC'),
        /** The v1 Qdrant collection: its vectors fill memories the database holds without an embedding (matched by payload `id`). */
        qdrant: z.object({ url: qdrantUrl, collection: collectionName.default('second_brain') }).strict().optional(),
      })
      .strict(),
    /** The v3 database: created when missing; one holding tables is refused unless existingTarget is `resume`. */
    target: z.object({ url: postgresUrl }).strict(),
    existingTarget: z.enum(['refuse', 'resume']).default('refuse'),
    owner: SecondBrainOwner,
    memories: z
      .object({
        /** Where tags live in v2 metadata (an array of strings or a comma-separated string). */
        tagsField: z.string().min(1).default('tags'),
        /** Where links to other memories live in v2 metadata (an array of memory ids), if anywhere. */
        linksField: z.string().min(1).optional(),
        /** The title when a memory's content has no non-blank line. */
        untitled: z.string().min(1).max(500).default('Untitled memory'),
        /** v2.0 has no memory_type: this, unless metadata.memory_type names one. */
        defaultMemoryType: z.string().min(1).max(50).default('semantic'),
        /** The model that made the v2 embeddings (v1 points name their own in meta.embedding_model). */
        embeddingModel: z.string().min(1).max(100).default('text-embedding-ada-002'),
        /** Memories with no embedding anywhere: copied without one (listed by id), or the run stops at preflight. */
        withoutEmbedding: z.enum(['copy', 'refuse']).default('copy'),
      })
      .strict()
      .prefault({}),
    /** The embedding size v3 stores (its schema says 1536); the source must match. */
    dimensions: z.number().int().positive().max(16_000).default(1536),
    /** Where the pg_dump of the source and this run's records go. */
    backup: z.object({ dir: z.string().min(1) }).strict(),
    copy: CopyPlan.prefault({}),
    validation: z.object({ searchSample: z.number().int().min(0).max(1_000).default(20) }).strict().prefault({}),
    approval: ApprovalPlan.prefault({}),
    /** After a rejection or approval timeout: remove what this run created in the target, or keep it for a later `resume`. */
    onReject: z.enum(['drop-target', 'keep-target']).default('drop-target'),
    /** The live-backend file the Second Brain deployment reads its database from; cutover rewrites it, rollback restores it. */
    cutover: z.object({ file: z.string().min(1) }).strict(),
    catchUp: CatchUpWhileWaiting.prefault({}),
    rollbackWindow: duration.default('0s'),
    dryRun: z.boolean().default(false),
  })
  .strict();

export type SecondBrainPlanInput = z.input<typeof SecondBrainPlan>;
export type SecondBrainPlan = z.output<typeof SecondBrainPlan>;

/** A credential-free name of a database for search attributes and notes. */
export function describeDatabase(url: string): string {
  const parsed = new URL(url);
  return `postgres://${parsed.host}${parsed.pathname}`;
}
