/**
 * The plan of a memoryGraphMigration: memorygraph memories and relationships
 * from one store to another, any of SQLite, Neo4j, FalkorDB or an export file.
 * Plans name files and credential-free endpoints; passwords stay in the
 * worker's environment (NEO4J_USER/NEO4J_PASSWORD, FALKORDB_PASSWORD).
 */
import { z } from 'zod';
import { ApprovalPlan, CatchUpWhileWaiting, CopyPlan, duration, endpointUrl } from './plan-schemas';

const graphName = z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'must be a graph name (letters, digits, _ . : -)');

export const MemoryGraphEndpoint = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('sqlite'), path: z.string().min(1) }).strict(),
  z
    .object({
      kind: z.literal('neo4j'),
      uri: endpointUrl(['bolt:', 'bolt+s:', 'bolt+ssc:', 'neo4j:', 'neo4j+s:', 'neo4j+ssc:'], 'NEO4J_USER/NEO4J_PASSWORD'),
      database: z.string().min(1).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('falkordb'),
      url: endpointUrl(['redis:', 'rediss:'], 'FALKORDB_PASSWORD'),
      graph: graphName.default('memorygraph'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('export-file'),
      path: z.string().min(1),
      /** memorygraph's own export (what `memorygraph import` reads), or memshift's lossless JSONL + manifest. */
      format: z.enum(['memorygraph-2.0', 'memshift-jsonl']),
    })
    .strict(),
]);
export type MemoryGraphEndpoint = z.output<typeof MemoryGraphEndpoint>;

export const MemoryGraphPlan = z
  .object({
    source: MemoryGraphEndpoint,
    target: MemoryGraphEndpoint,
    /**
     * `refuse`: the target must be empty. `merge`: it may already hold data
     * (an earlier run's, or other memories); what it held before is backed up
     * and kept (a rollback or rejection puts it back as backed up), and an id
     * it holds with contents different from the source's stops the run.
     * `resume` is the older name of `merge`, accepted so earlier plans and
     * recorded runs keep working.
     */
    existingTarget: z.enum(['refuse', 'merge', 'resume']).default('refuse'),
    /** Where this run keeps its records and the target's backup (one folder per workflow id). */
    workDir: z.string().min(1),
    copy: CopyPlan.prefault({}),
    approval: ApprovalPlan.prefault({}),
    /** After a rejection or approval timeout: remove what this run wrote (and put back what it held before), or keep it for a later `merge` run. */
    onReject: z.enum(['remove-run-writes', 'keep-target']).default('remove-run-writes'),
    /** The live-backend file memorygraph's deployment reads; required unless the target is an export file. */
    cutover: z.object({ file: z.string().min(1) }).strict().optional(),
    catchUp: CatchUpWhileWaiting.prefault({}),
    rollbackWindow: duration.default('0s'),
    dryRun: z.boolean().default(false),
  })
  .strict()
  .superRefine((plan, ctx) => {
    if (plan.target.kind !== 'export-file' && !plan.cutover) {
      ctx.addIssue({ code: 'custom', path: ['cutover'], message: 'name the live-backend file (cutover.file) the memory service reads; only export-file targets need none' });
    }
    if (sameLocation(plan.source, plan.target)) {
      ctx.addIssue({ code: 'custom', path: ['target'], message: 'is the source itself; pick another store' });
    }
  });

export type MemoryGraphPlanInput = z.input<typeof MemoryGraphPlan>;
export type MemoryGraphPlan = z.output<typeof MemoryGraphPlan>;

function sameLocation(a: MemoryGraphEndpoint, b: MemoryGraphEndpoint): boolean {
  if (a.kind !== b.kind) return false;
  return describeEndpoint(a) === describeEndpoint(b);
}

/** A one-line, credential-free name for search attributes and reports. */
export function describeEndpoint(endpoint: MemoryGraphEndpoint): string {
  switch (endpoint.kind) {
    case 'sqlite':
      return `sqlite://${endpoint.path}`;
    case 'neo4j':
      return `${endpoint.uri}${endpoint.database ? `/${endpoint.database}` : ''}`;
    case 'falkordb':
      return `falkordb://${new URL(endpoint.url).host}/${endpoint.graph}`;
    case 'export-file':
      return `${endpoint.format}:${endpoint.path}`;
  }
}
