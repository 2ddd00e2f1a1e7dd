/**
 * Opening the two ends of a memoryGraphMigration from the plan, and what the
 * run leaves beside them (its records folder). Sources open read-only.
 */
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describeEndpoint, type MemoryGraphEndpoint } from '../../workflows/memory-graph-plan';
import { openFalkorStore } from '../stores/falkordb';
import { readExportFile, stagingOf } from '../stores/memorygraph-files';
import { openNeo4jGraphStore } from '../stores/memorygraph-neo4j';
import { MemorygraphSqliteStore } from '../stores/memorygraph-sqlite';
import type { GraphStore } from './graph-store';

const fileExists = (file: string) => fs.stat(file).then((s) => s.isFile(), () => false);

/** The source, read-only. `failFast`: an unreachable store is a non-retryable failure (preflight). */
export async function openSource(endpoint: MemoryGraphEndpoint, failFast = false): Promise<GraphStore> {
  switch (endpoint.kind) {
    case 'sqlite':
      if (!(await fileExists(endpoint.path))) throw ApplicationFailure.nonRetryable(`Source database not found: ${endpoint.path}. Check source.path.`, 'SourceNotFound');
      return MemorygraphSqliteStore.openReadOnly(endpoint.path);
    case 'export-file':
      return readExportFile(endpoint.path, endpoint.format);
    default:
      return openGraphServer(endpoint, failFast);
  }
}

/**
 * The target, for writing: a SQLite file (created with memorygraph's schema
 * when missing), a graph server, or an export file's staging store.
 */
export async function openTarget(endpoint: MemoryGraphEndpoint, failFast = false): Promise<GraphStore> {
  switch (endpoint.kind) {
    case 'sqlite':
      return MemorygraphSqliteStore.openWritable(endpoint.path);
    case 'export-file':
      return MemorygraphSqliteStore.openWritable(stagingOf(endpoint.path));
    default:
      return openGraphServer(endpoint, failFast);
  }
}

/**
 * The target as it is now, opened without writing anything: null when it does
 * not exist yet (a SQLite file or staging store not created, an export file not written).
 */
export async function probeTarget(endpoint: MemoryGraphEndpoint): Promise<GraphStore | null> {
  switch (endpoint.kind) {
    case 'sqlite': {
      const stat = await fs.stat(endpoint.path).catch(() => null);
      if (!stat || stat.size === 0) return null;
      return MemorygraphSqliteStore.openReadOnly(endpoint.path);
    }
    case 'export-file': {
      if (await fileExists(endpoint.path)) {
        throw ApplicationFailure.nonRetryable(`target.path ${endpoint.path} already exists; memshift never overwrites a file it did not write. Pick a new path. Nothing was written.`, 'TargetFileExists');
      }
      const staging = stagingOf(endpoint.path);
      return (await fileExists(staging)) ? MemorygraphSqliteStore.openReadOnly(staging) : null;
    }
    default:
      return openGraphServer(endpoint, true);
  }
}

async function openGraphServer(endpoint: MemoryGraphEndpoint, failFast: boolean): Promise<GraphStore> {
  if (endpoint.kind === 'neo4j') return openNeo4jGraphStore({ uri: endpoint.uri, database: endpoint.database }, failFast);
  if (endpoint.kind === 'falkordb') return openFalkorStore({ url: endpoint.url, graph: endpoint.graph }, failFast);
  throw new Error(`not a graph server: ${describeEndpoint(endpoint)}`);
}

export async function withStore<T>(open: Promise<GraphStore>, use: (store: GraphStore) => Promise<T>): Promise<T> {
  const store = await open;
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** This run's records folder: `<workDir>/<workflow id>/`. */
export function runDir(workDir: string, workflowId: string): string {
  return path.join(workDir, workflowId.replace(/[^A-Za-z0-9_.-]/g, '_'));
}
