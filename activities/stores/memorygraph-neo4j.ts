/**
 * memorygraph's Neo4j backend, through the driver set-up the rest of memshift
 * uses (openNeo4jDriver: credentials from NEO4J_USER / NEO4J_PASSWORD only).
 *
 * memorygraph writes some relationship timestamps (valid_from, recorded_at,
 * valid_until) as native Neo4j DATETIMEs and everything else as ISO strings;
 * memshift carries them all as the ISO strings Python's isoformat() gives,
 * which is what memorygraph's SQLite and FalkorDB backends hold. Integers
 * come back as numbers; memorygraph's integer fields are written as integers,
 * every other number as a float.
 */
import { ApplicationFailure } from '@temporalio/common';
import neo4j, { type Driver } from 'neo4j-driver';
import { CypherGraphStore, type CypherSession, type Row } from '../memorygraph/cypher-store';
import { isIntegerProperty } from '../memorygraph/graph-store';
import { openNeo4jDriver, verifyReachable } from './neo4j';

export interface Neo4jLocation {
  /** bolt:// or neo4j:// URI without credentials. */
  uri: string;
  database?: string;
}

export const describeNeo4j = ({ uri, database }: Neo4jLocation) => `${uri}${database ? `/${database}` : ''}`;

/** Connects and checks reachability and credentials; failures at preflight (`failFast`) are non-retryable. */
export async function openNeo4jGraphStore(location: Neo4jLocation, failFast = false): Promise<Neo4jGraphStore> {
  const driver = openNeo4jDriver(location.uri);
  try {
    await verifyReachable(driver, location, failFast);
  } catch (err) {
    await driver.close();
    throw err;
  }
  return new Neo4jGraphStore(location, driver);
}

export class Neo4jGraphStore extends CypherGraphStore {
  constructor(
    readonly location: Neo4jLocation,
    private readonly driver: Driver,
  ) {
    const run = async (query: string, params: Row, mode: 'READ' | 'WRITE') => {
      try {
        const result = await driver.executeQuery(query, toNeo4j(params) as Row, {
          database: location.database,
          routing: mode === 'READ' ? neo4j.routing.READ : neo4j.routing.WRITE,
        });
        return result.records.map((r) => fromNeo4j(r.toObject()) as Row);
      } catch (err) {
        // A client error (a value Neo4j cannot store, a constraint) is refused again on every retry; transient ones are retried.
        const code = (err as { code?: string }).code ?? '';
        if (code.startsWith('Neo.ClientError.') && !code.startsWith('Neo.ClientError.Cluster.')) {
          // The code only: Neo4j's messages quote the offending value, which may be memory content.
          throw ApplicationFailure.nonRetryable(`Neo4j ${describeNeo4j(location)} refused a query with ${code}.`, 'Neo4jQueryFailed');
        }
        throw err;
      }
    };
    const session: CypherSession = {
      read: (q, p) => run(q, p, 'READ'),
      write: (q, p) => run(q, p, 'WRITE'),
      close: () => driver.close(),
    };
    super(describeNeo4j(location), session);
  }

  /** memorygraph's unique constraint on Memory.id (MERGE by id relies on it). */
  async prepareSchema(): Promise<void> {
    await this.driver.executeQuery('CREATE CONSTRAINT memory_id_unique IF NOT EXISTS FOR (m:Memory) REQUIRE m.id IS UNIQUE', {}, { database: this.location.database });
  }
}

/** JS → driver values: integer fields as Neo4j integers, other numbers as floats (the driver's default). */
function toNeo4j(value: unknown, key = ''): unknown {
  if (typeof value === 'number') {
    if (key === 'limit' || isIntegerProperty(key, value)) return neo4j.int(value);
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => toNeo4j(v, key));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toNeo4j(v, k)]));
  return value;
}

/** Driver → JS values: integers as numbers, temporal values as Python-style ISO strings. */
function fromNeo4j(value: unknown): unknown {
  if (neo4j.isInt(value)) return (value as { toNumber(): number }).toNumber();
  if (neo4j.isDateTime(value) || neo4j.isLocalDateTime(value) || neo4j.isDate(value)) return isoString(value as never);
  if (Array.isArray(value)) return value.map(fromNeo4j);
  if (typeof value === 'object' && value !== null) {
    if (neo4j.isDuration(value) || neo4j.isPoint(value) || neo4j.isTime(value) || neo4j.isLocalTime(value)) {
      throw ApplicationFailure.nonRetryable('A Memory or relationship property holds a Neo4j duration, point or time value, which memorygraph never writes; memshift will not guess its meaning.', 'UnsupportedValue');
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromNeo4j(v)]));
  }
  return value;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** As Python's datetime.isoformat(): microseconds only when non-zero, offset as ±HH:MM. */
function isoString(t: { year: unknown; month: unknown; day: unknown; hour?: unknown; minute?: unknown; second?: unknown; nanosecond?: unknown; timeZoneOffsetSeconds?: unknown; timeZoneId?: unknown }): string {
  const n = (v: unknown) => (neo4j.isInt(v) ? (v as { toNumber(): number }).toNumber() : Number(v ?? 0));
  const date = `${pad(n(t.year), 4)}-${pad(n(t.month))}-${pad(n(t.day))}`;
  if (t.hour === undefined) return date;
  const micros = Math.floor(n(t.nanosecond) / 1000);
  let text = `${date}T${pad(n(t.hour))}:${pad(n(t.minute))}:${pad(n(t.second))}${micros ? `.${pad(micros, 6)}` : ''}`;
  if (t.timeZoneOffsetSeconds !== undefined && t.timeZoneOffsetSeconds !== null) {
    const offset = n(t.timeZoneOffsetSeconds);
    const abs = Math.abs(offset);
    text += `${offset < 0 ? '-' : '+'}${pad(Math.floor(abs / 3600))}:${pad(Math.floor((abs % 3600) / 60))}`;
  } else if (t.timeZoneId) {
    throw ApplicationFailure.nonRetryable(`A timestamp carries only a zone id (${String(t.timeZoneId)}); memshift will not guess its offset.`, 'UnsupportedValue');
  }
  return text;
}
