/**
 * Graph export/restore against real Neo4j: a mem0-like graph is exported from
 * one in-process Neo4j and restored into a second, empty one.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import neo4j from 'neo4j-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeValue,
  exportGraph,
  graphCounts,
  manifestPathFor,
  openNeo4jDriver,
  restoreGraph,
  type GraphExportManifest,
  type GraphExportSummary,
} from '../activities/stores/neo4j';
import { startTestNeo4j, type TestNeo4j } from './support/neo4j';

const USERS = ['alice', 'bob'];
const ENTITIES_PER_USER = 1200; // > one restore batch of 1000
const EMBEDDING_DIMS = 64;

let source: TestNeo4j;
let target: TestNeo4j;
let workDir: string;
let exportFile: string;
let exported: GraphExportSummary;

async function run(uri: string, query: string, params: Record<string, unknown> = {}) {
  const driver = openNeo4jDriver(uri);
  try {
    return (await driver.executeQuery(query, params)).records;
  } finally {
    await driver.close();
  }
}

function embedding(seed: number): number[] {
  return Array.from({ length: EMBEDDING_DIMS }, (_, i) => Math.sin(seed * 31 + i) / 3);
}

/** A graph shaped like mem0's graph memory, plus edge cases: every property type, an unlabelled node, parallel edges, a self-loop. */
async function seedMem0Graph(uri: string): Promise<void> {
  const created = new neo4j.types.DateTime(2025, 3, 14, 9, 26, 53, 589_793_238, 3600);
  const entities = USERS.flatMap((user, u) =>
    Array.from({ length: ENTITIES_PER_USER }, (_, i) => ({
      name: `${user}-entity-${i}`,
      user_id: user,
      kind: ['person', 'food', 'place'][i % 3],
      embedding: embedding(u * ENTITIES_PER_USER + i),
      mentions: neo4j.int(i),
    })),
  );
  await run(
    uri,
    `UNWIND $entities AS e
     CREATE (n:__Entity__ {name: e.name, user_id: e.user_id, embedding: e.embedding, mentions: e.mentions, created: $created})
     FOREACH (_ IN CASE WHEN e.kind = 'person' THEN [1] ELSE [] END | SET n:person)
     FOREACH (_ IN CASE WHEN e.kind = 'food' THEN [1] ELSE [] END | SET n:food)
     FOREACH (_ IN CASE WHEN e.kind = 'place' THEN [1] ELSE [] END | SET n:place)`,
    { entities, created },
  );
  await run(
    uri,
    `MATCH (p:person), (f:food) WHERE p.user_id = f.user_id AND p.mentions + 1 = f.mentions
     CREATE (p)-[:LIKES {weight: 0.75, since: date('2024-01-15'), mentions: 3, created: $created}]->(f)`,
    { created },
  );
  await run(
    uri,
    `MATCH (p:person), (pl:place) WHERE p.user_id = pl.user_id AND p.mentions + 2 = pl.mentions
     CREATE (p)-[:LIVES_IN {source: 'chat'}]->(pl), (p)-[:VISITED {times: [1, 2, 3]}]->(pl), (p)-[:VISITED {times: [4]}]->(pl)`,
  );
  await run(
    uri,
    `CREATE (t:TypeZoo:__Entity__ {
       name: 'zoo', user_id: 'alice', big: $big, small: -7, f: 1.0, negZero: -0.0, nan: 0.0 / 0.0, inf: 1.0 / 0.0,
       b: false, s: 'héllo \`quoted\` "json"', bytes: $bytes, emptyList: [], strings: ['a', 'b'], floats: [1.0, 2.5],
       d: date('2024-02-29'), t: time('23:59:59.999999999-05:30'), lt: localtime('00:00:01'),
       dt: datetime('1969-07-20T20:17:40Z'), dtz: datetime('2024-10-27T02:30:00[Europe/Berlin]'),
       ldt: localdatetime('2000-01-01T00:00:00.000000001'), dur: duration('P1Y2M3DT4H5M6.000000007S'),
       p2: point({x: 1.5, y: -2}), p3: point({longitude: 13.4, latitude: 52.5, height: 34}), dates: [date('2020-01-01'), date('2021-12-31')]
     })
     CREATE (bare {note: 'no labels'})
     CREATE (t)-[:\`ODD TYPE\`]->(bare), (t)-[:SELF {loop: true}]->(t)`,
    { big: neo4j.int('9007199254740993'), bytes: Int8Array.from([0, -1, 127, -128]) },
  );
  await run(uri, 'CREATE INDEX entity_user_id FOR (n:__Entity__) ON (n.user_id)');
  await run(uri, 'CREATE CONSTRAINT typezoo_name FOR (n:TypeZoo) REQUIRE n.name IS UNIQUE');
}

/**
 * Every node and relationship as a canonical string (labels sorted, properties
 * encoded with their types), sorted: equal snapshots mean the same graph, types included.
 */
async function snapshot(uri: string): Promise<{ nodes: string[]; relationships: string[] }> {
  const describeNode = (labels: string[], properties: Record<string, unknown>) =>
    JSON.stringify([
      [...labels].sort(),
      Object.keys(properties)
        .sort()
        .map((key) => [key, encodeValue(properties[key])]),
    ]);
  const nodes = await run(uri, 'MATCH (n) RETURN labels(n) AS labels, properties(n) AS properties');
  const relationships = await run(
    uri,
    `MATCH (a)-[r]->(b)
     RETURN labels(a) AS aLabels, properties(a) AS aProps, type(r) AS type, properties(r) AS props, labels(b) AS bLabels, properties(b) AS bProps`,
  );
  return {
    nodes: nodes.map((n) => describeNode(n.get('labels'), n.get('properties'))).sort(),
    relationships: relationships
      .map((r) =>
        JSON.stringify([
          describeNode(r.get('aLabels'), r.get('aProps')),
          r.get('type'),
          describeNode([], r.get('props')),
          describeNode(r.get('bLabels'), r.get('bProps')),
        ]),
      )
      .sort(),
  };
}

/** Removes this test's graph and schema from a server it shares (NEO4J_URI). */
async function emptyDatabase(uri: string): Promise<void> {
  const driver = openNeo4jDriver(uri);
  const session = driver.session();
  try {
    // CALL … IN TRANSACTIONS needs an auto-commit transaction, hence session.run.
    await session.run('MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS');
    await session.run('DROP INDEX entity_user_id IF EXISTS');
    await session.run('DROP CONSTRAINT typezoo_name IF EXISTS');
  } finally {
    await session.close();
    await driver.close();
  }
}

async function schemaNames(uri: string): Promise<string[]> {
  const records = await run(uri, "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name ORDER BY name");
  return records.map((r) => r.get('name') as string);
}

beforeAll(async () => {
  [source, target] = await Promise.all([startTestNeo4j(), startTestNeo4j()]);
  const existing = await graphCounts({ uri: source.uri });
  if (existing.nodes > 0) throw new Error(`${source.uri} must start empty: this test writes and deletes its whole graph`);
  await seedMem0Graph(source.uri);
  workDir = await mkdtemp(path.join(tmpdir(), 'memshift-graph-'));
  exportFile = path.join(workDir, 'backup', 'graph.jsonl');
});

afterAll(async () => {
  if (process.env.NEO4J_URI && source) await emptyDatabase(source.uri);
  await Promise.all([source?.stop(), target?.stop()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('Neo4j graph export and restore', () => {
  it('exports every node and relationship to JSONL with a manifest that matches it', async () => {
    exported = await exportGraph({ uri: source.uri, file: exportFile });

    const counts = await graphCounts({ uri: source.uri });
    expect(exported.nodes).toBe(counts.nodes);
    expect(exported.relationships).toBe(counts.relationships);
    expect(exported.nodesByLabel).toMatchObject({ __Entity__: 2 * ENTITIES_PER_USER + 1, person: 800, food: 800, place: 800, TypeZoo: 1 });
    expect(exported.relationshipsByType).toEqual({ LIKES: 800, LIVES_IN: 800, VISITED: 1600, 'ODD TYPE': 1, SELF: 1 });
    expect(exported.schemaStatements).toBe(2);

    const manifest = JSON.parse(await readFile(manifestPathFor(exportFile), 'utf8')) as GraphExportManifest;
    const contents = await readFile(exportFile);
    expect(manifest.sha256).toBe(createHash('sha256').update(contents).digest('hex'));
    expect(manifest).toMatchObject({ nodes: counts.nodes, relationships: counts.relationships, source_uri: source.uri, bytes: contents.length });
    expect(contents.toString('utf8').trimEnd().split('\n')).toHaveLength(2 + counts.nodes + counts.relationships);
  });

  it('refuses to restore into a database that is not empty, and writes nothing there', async () => {
    const before = await graphCounts({ uri: source.uri });
    const schemaBefore = await schemaNames(source.uri);

    await expect(restoreGraph({ uri: source.uri, file: exportFile })).rejects.toThrow(/not empty/);

    expect(await graphCounts({ uri: source.uri })).toEqual(before);
    expect(await schemaNames(source.uri)).toEqual(schemaBefore);
  });

  it('refuses an export whose JSONL no longer matches its manifest sha256', async () => {
    const tamperedFile = path.join(workDir, 'tampered.jsonl');
    const original = await readFile(exportFile, 'utf8');
    expect(original).toContain('"bob-entity-7"');
    await writeFile(tamperedFile, original.replace('"bob-entity-7"', '"eve-entity-7"'));
    await copyFile(manifestPathFor(exportFile), manifestPathFor(tamperedFile));

    await expect(restoreGraph({ uri: target.uri, file: tamperedFile })).rejects.toThrow(/does not match its manifest/);

    if (target.uri !== source.uri) expect(await graphCounts({ uri: target.uri })).toEqual({ nodes: 0, relationships: 0 });
  });

  it('restores into an empty database with the same labels, types, properties and schema', async () => {
    const expected = await snapshot(source.uri);
    // One external server plays both parts: empty it (it started empty, so only this test's data goes).
    if (target.uri === source.uri) await emptyDatabase(source.uri);

    const restored = await restoreGraph({ uri: target.uri, file: exportFile });

    expect(restored).toMatchObject({
      nodes: exported.nodes,
      relationships: exported.relationships,
      nodesByLabel: exported.nodesByLabel,
      relationshipsByType: exported.relationshipsByType,
    });
    expect(await graphCounts({ uri: target.uri })).toEqual({ nodes: exported.nodes, relationships: exported.relationships });
    const actual = await snapshot(target.uri);
    expect(actual.nodes).toEqual(expected.nodes);
    expect(actual.relationships).toEqual(expected.relationships);

    const [zoo] = await run(target.uri, "MATCH (n:TypeZoo) RETURN n.big AS big, n.f AS f, n.dtz AS dtz");
    expect(neo4j.isInt(zoo.get('big')) && zoo.get('big').toString()).toBe('9007199254740993');
    expect(typeof zoo.get('f')).toBe('number'); // still a float, not an integer
    expect(zoo.get('dtz').timeZoneId).toBe('Europe/Berlin');

    expect(await schemaNames(target.uri)).toEqual(expect.arrayContaining(['entity_user_id', 'typezoo_name']));
    const leftovers = await run(
      target.uri,
      "MATCH (n) WHERE n:__MemshiftRestore OR n.__memshift_restore_id IS NOT NULL RETURN count(n) AS n",
    );
    expect(leftovers[0].get('n').toNumber()).toBe(0);
    expect(await schemaNames(target.uri)).not.toContain('memshift_restore_id');
  });
});
