/**
 * Plan pieces shared by every runbook, validated with zod at the workflow's
 * first step (and by `memshift start` before it starts anything).
 * Plans name endpoints and files only: credentials live in the worker's environment.
 */
import { z } from 'zod';

export const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, "must be a duration like '90s', '30m', '2h' or '1d'");

/** A `duration` of zero ('0s', '0m', …): e.g. no rollback window at all. */
export const isZeroDuration = (value: string) => /^0+[a-z]+$/.test(value);

export const sqlIdentifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain SQL identifier (letters, digits, underscores)');

export const collectionName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,255}$/, 'must be a Qdrant collection name (letters, digits, _ . -)');

/** Query parameters that carry a secret in the URLs people paste (libpq, REST APIs). */
const SECRET_QUERY_PARAMETERS = ['password', 'sslpassword', 'passfile', 'api_key', 'apikey', 'api-key', 'key', 'token', 'access_token', 'secret'];

/** An endpoint URL that carries no secret anywhere (a user name is not a secret). */
export function endpointUrl(protocols: string[], credentialsFrom: string) {
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      // Not echoed either: a string that is not a URL may still hold a secret.
      ctx.addIssue({ code: 'custom', message: 'is not a URL' });
      return;
    }
    if (!protocols.includes(url.protocol)) {
      ctx.addIssue({ code: 'custom', message: `must start with ${protocols.map((p) => `${p}//`).join(' or ')}` });
    }
    const secretParameters = [...url.searchParams.keys()].filter((name) => SECRET_QUERY_PARAMETERS.includes(name.toLowerCase()));
    if (url.password || secretParameters.length) {
      // Never echo the URL back: it holds a secret.
      const where = url.password ? 'a password' : `a secret in its query (${secretParameters.join(', ')})`;
      ctx.addIssue({
        code: 'custom',
        message: `must not contain ${where}: it would be stored in workflow history; set ${credentialsFrom} in the worker's environment instead`,
      });
    }
  });
}

export const qdrantUrl = endpointUrl(['http:', 'https:'], 'QDRANT_API_KEY');
export const postgresUrl = endpointUrl(['postgres:', 'postgresql:'], 'PGUSER/PGPASSWORD');

export const QdrantTarget = z
  .object({
    kind: z.literal('qdrant'),
    url: qdrantUrl,
    collection: collectionName,
    /** The vector size the target must have; defaults to the source's. */
    dimensions: z.number().int().positive().optional(),
  })
  .strict();

export const PgvectorTarget = z
  .object({
    kind: z.literal('pgvector'),
    url: postgresUrl,
    schema: sqlIdentifier.default('public'),
    table: sqlIdentifier,
    /** The vector size the target must have; defaults to the source's. */
    dimensions: z.number().int().positive().optional(),
  })
  .strict();

export const TargetSpec = z.discriminatedUnion('kind', [QdrantTarget, PgvectorTarget]);
export type TargetSpec = z.output<typeof TargetSpec>;

/** What a copy may be set to, in a plan or live (setCopySettings). */
export const COPY_LIMITS = { batchSize: { min: 1, max: 10_000 }, concurrency: { min: 1, max: 16 } } as const;
/**
 * Ranges a copy is split into, each its own activity on whichever worker takes
 * it; fixed for the run. Each range adds about a dozen history events (its copy
 * and its validation), so 32 keeps a run far inside the 1,000-event budget.
 */
export const MAX_COPY_PARTITIONS = 32;

export const BatchSize = z.number().int().min(COPY_LIMITS.batchSize.min).max(COPY_LIMITS.batchSize.max);

/**
 * A plan's batch size when it names none, by target. Into pgvector a batch is
 * one COPY stream, and each batch pays a commit and a read-back of its first
 * and last point (what lets a crash redo at most one batch), so four times
 * fewer batches run nearer the speed of one bare COPY (README, Performance).
 * Into Qdrant a batch is one REST body, which 2,000 long memories can push
 * past Qdrant's 32 MB request limit.
 */
export const DEFAULT_BATCH_SIZE = { qdrant: 500, pgvector: 2_000 } as const satisfies Record<TargetSpec['kind'], number>;

export const CopyPlan = z
  .object({
    batchSize: BatchSize.default(DEFAULT_BATCH_SIZE.qdrant),
    concurrency: z.number().int().min(COPY_LIMITS.concurrency.min).max(COPY_LIMITS.concurrency.max).default(2),
    /** Key ranges copied (and validated) in parallel; 1 = one copy activity, as before. Pages in flight per range: `concurrency`. */
    partitions: z.number().int().min(1).max(MAX_COPY_PARTITIONS).optional(),
  })
  .strict();

/**
 * Catch-ups while approval waits keep the cutover's own catch-up short
 * however long the approver takes; their number is capped so history stays bounded.
 */
export const CatchUpWhileWaiting = z
  .object({
    every: duration.default('5m'),
    maxRoundsWhileWaiting: z.number().int().min(0).max(500).default(60),
  })
  .strict();

export const ApprovalPlan = z
  .object({
    /** Who may approve, reject or roll back; empty means anyone. */
    approvers: z.array(z.string().min(1)).default([]),
    /** Without a decision by then, the workflow ends without cutover. */
    timeout: duration.optional(),
  })
  .strict();

/** A one-line, credential-free name of a target for search attributes and logs. */
export function describeTarget(target: TargetSpec): string {
  const host = new URL(target.url).host;
  return target.kind === 'qdrant' ? `qdrant://${host}/${target.collection}` : `pgvector://${host}/${target.schema}.${target.table}`;
}
