/**
 * memorygraph's FalkorDB backend (graph `memorygraph` by default), through the
 * official `falkordb` client. URLs name host and port only; the password comes
 * from the worker's FALKORDB_PASSWORD (user name, if any, from the URL).
 *
 * Parameters are rendered into the query's `CYPHER name=value` prefix by
 * memshift, not the client, so numbers keep memorygraph's types: its integer
 * fields (usage_count, counters) as integers, every other number as a float
 * (the client would turn 1.0 into the integer 1).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FalkorDB } from 'falkordb';
import { CypherGraphStore, type CypherSession, type Row } from '../memorygraph/cypher-store';
import { isIntegerProperty } from '../memorygraph/graph-store';

export const DEFAULT_FALKORDB_GRAPH = 'memorygraph';

export interface FalkorLocation {
  /** redis:// URL without a password. */
  url: string;
  graph: string;
}

export const describeFalkor = ({ url, graph }: FalkorLocation) => `falkordb://${new URL(url).host}/${graph}`;

/** Connects and checks the server answers FalkorDB commands; an unreachable or refusing server fails non-retryably when `failFast`. */
export async function openFalkorStore(location: FalkorLocation, failFast = false): Promise<FalkorStore> {
  const url = new URL(location.url);
  let db: FalkorDB;
  try {
    db = await FalkorDB.connect({
      socket: { host: url.hostname, port: Number(url.port || 6379), connectTimeout: 5_000, reconnectStrategy: false } as never,
      username: url.username || undefined,
      password: process.env.FALKORDB_PASSWORD || undefined,
    });
    await db.list();
  } catch (err) {
    const message = `FalkorDB at ${describeFalkor(location)} is not reachable or refused the connection: ${(err as Error).message}`;
    if (failFast || /WRONGPASS|NOAUTH|unknown command/i.test((err as Error).message)) {
      throw ApplicationFailure.nonRetryable(`${message}. Check the URL and FALKORDB_PASSWORD in the worker's environment.`, 'FalkorDBUnreachable');
    }
    throw new Error(message);
  }
  return new FalkorStore(location, db);
}

export class FalkorStore extends CypherGraphStore {
  constructor(
    readonly location: FalkorLocation,
    private readonly db: FalkorDB,
  ) {
    const graph = db.selectGraph(location.graph);
    const run = async (query: string, params: Row, readOnly: boolean) => {
      const text = `CYPHER ${Object.entries(params).map(([k, v]) => `${k}=${literal(v, k)}`).join(' ')} ${query}`;
      try {
        const reply = readOnly ? await graph.roQuery<Row>(text) : await graph.query<Row>(text);
        return reply.data ?? [];
      } catch (err) {
        const message = (err as Error).message;
        // A graph that does not exist yet reads as empty.
        if (readOnly && /empty key/i.test(message)) return [];
        // The server answered and refused the query (a RESP error reply): the same query will be refused again.
        if (refusal(err as Error)) throw ApplicationFailure.nonRetryable(`FalkorDB ${describeFalkor(location)} refused a query: ${withoutQueryText(message)}`, 'FalkorDBQueryFailed');
        throw err;
      }
    };
    const session: CypherSession = {
      read: (query, params) => run(query, params, true),
      write: (query, params) => run(query, params, false),
      close: () => db.close(),
    };
    super(describeFalkor(location), session);
  }

  async exists(): Promise<boolean> {
    return (await this.db.list()).includes(this.location.graph);
  }

  /** memorygraph's own indexes, plus the unique constraint on Memory.id that MERGE relies on. */
  async prepareSchema(): Promise<void> {
    const graph = this.db.selectGraph(this.location.graph);
    const existing = JSON.stringify((await graph.roQuery('CALL db.indexes()').catch(() => ({ data: [] }))).data ?? []);
    for (const property of ['id', 'type', 'created_at', 'importance', 'confidence']) {
      if (!existing.includes(`"${property}"`)) await graph.query(`CREATE INDEX FOR (m:Memory) ON (m.${property})`).catch(ignoreExisting);
    }
    await graph.constraintCreate('UNIQUE' as never, 'NODE' as never, 'Memory', 'id').catch(ignoreExisting);
  }

  /** Removes the whole graph: only for a graph this run created. */
  async dropGraph(): Promise<void> {
    if (await this.exists()) await this.db.selectGraph(this.location.graph).delete();
  }
}

/** An error reply from the server, other than the transient ones (loading, busy). */
function refusal(err: Error): boolean {
  const replied = err.constructor.name === 'SimpleError' || /^ERR|errMsg/.test(err.message);
  return replied && !/^(LOADING|BUSY|TRYAGAIN|MASTERDOWN)/.test(err.message);
}

/**
 * FalkorDB's errors quote the query around the fault (`errCtx: …`), and the
 * query carries the parameters, memory contents included: only the error itself is kept.
 */
function withoutQueryText(message: string): string {
  return message.replace(/\s*errCtx:[\s\S]*$/, '').replace(/CYPHER [\s\S]*$/, '(query)').slice(0, 300);
}

function ignoreExisting(err: Error): void {
  if (!/already (exists|indexed)|constraint already/i.test(err.message)) throw err;
}

/** A Cypher literal; `key` decides integer vs float for numbers (memorygraph's field types). */
function literal(value: unknown, key = ''): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return `"${value.replace(/["\\]/g, '\\$&')}"`;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw ApplicationFailure.nonRetryable(`Property ${key} holds ${value}, which FalkorDB cannot store.`, 'UnsupportedValue');
    if (Number.isInteger(value) && (isIntegerProperty(key, value) || key === 'limit')) return String(value);
    const text = String(value);
    return /[.eE]/.test(text) ? text : `${text}.0`;
  }
  if (Array.isArray(value)) return `[${value.map((v) => literal(v, key)).join(',')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Row).map(([k, v]) => `\`${k.replace(/`/g, '``')}\`:${literal(v, k)}`).join(',')}}`;
  }
  throw ApplicationFailure.nonRetryable(`Property ${key} has a value of type ${typeof value}, which memshift cannot write to FalkorDB.`, 'UnsupportedValue');
}
