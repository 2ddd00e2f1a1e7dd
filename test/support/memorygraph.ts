/**
 * memorygraph itself (memorygraphmcp 0.12.4 in .tools/memorygraph-venv) for
 * tests: `populate` writes memories and relationships with memorygraph's own
 * code, `dump` reads a store back through memorygraph's own backends (see
 * memorygraph_fixture.py). The backend is chosen by the environment variables
 * memorygraph's server reads.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const PYTHON = path.resolve(__dirname, '../../.tools/memorygraph-venv/bin/python');
const SCRIPT = path.resolve(__dirname, 'memorygraph_fixture.py');

export type MemorygraphBackend = { kind: 'sqlite'; path: string } | { kind: 'falkordb'; port: number; graph?: string } | { kind: 'neo4j'; uri: string };

export interface MemorygraphDump {
  backend: string;
  memories: Record<string, { type: string; title: string; created_at: string; updated_at: string; tags: string[]; project_path: string | null } | null>;
  relationships: { id: string; from: string; to: string; type: string; valid_from: string; invalidated_by: string | null; created_at: string }[];
  related: Record<string, number>;
}

function envFor(backend: MemorygraphBackend): Record<string, string> {
  switch (backend.kind) {
    case 'sqlite':
      return { MEMORY_BACKEND: 'sqlite', MEMORY_SQLITE_PATH: backend.path };
    case 'falkordb':
      return { MEMORY_BACKEND: 'falkordb', FALKORDB_HOST: '127.0.0.1', FALKORDB_PORT: String(backend.port), ...(backend.graph ? { MEMSHIFT_FALKORDB_GRAPH: backend.graph } : {}) };
    case 'neo4j':
      // The test Neo4j runs without auth; memorygraph insists on a password anyway.
      return { MEMORY_BACKEND: 'neo4j', MEMORY_NEO4J_URI: backend.uri, MEMORY_NEO4J_PASSWORD: 'unused' };
  }
}

async function runFixture<T>(backend: MemorygraphBackend, args: string[]): Promise<T> {
  if (!existsSync(PYTHON)) throw new Error('memorygraph is not installed: run scripts/install-memorygraph.sh');
  const { stdout } = await promisify(execFile)(PYTHON, [SCRIPT, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', MEMORY_ALLOW_CYCLES: 'true', ...envFor(backend) },
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(stdout) as T;
}

/** Memories (several types, unicode, back-dated created_at) and relationships (all 35 types, cycles, back-dated valid_from) written by memorygraph. */
export function populateWithMemorygraph(
  backend: MemorygraphBackend,
  options: { memories: number; relationships: number; seed?: string; offset?: number; oneTransaction?: boolean },
): Promise<{ memories: string[]; relationships: string[] }> {
  const { memories, relationships, seed = 's', offset = 0, oneTransaction = false } = options;
  const args = ['populate', '--memories', String(memories), '--relationships', String(relationships), '--seed', seed, '--offset', String(offset)];
  return runFixture(backend, oneTransaction ? [...args, '--one-transaction'] : args);
}

/** What memorygraph's own code reads from a store: every memory it can parse, every relationship with id and valid_from. */
export function dumpWithMemorygraph(backend: MemorygraphBackend, ids: string[] = []): Promise<MemorygraphDump> {
  return runFixture(backend, ['dump', ...(ids.length ? ['--ids', ...ids] : [])]);
}

/** memorygraph's own CLI (`memorygraph export …`, `memorygraph import …`) against `backend`. */
export async function memorygraphCli(backend: MemorygraphBackend, args: string[]): Promise<string> {
  const cli = path.join(path.dirname(PYTHON), 'memorygraph');
  const { stdout, stderr } = await promisify(execFile)(cli, args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', MEMORY_ALLOW_CYCLES: 'true', ...envFor(backend) },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout + stderr;
}
