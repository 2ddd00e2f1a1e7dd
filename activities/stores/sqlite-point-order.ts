/**
 * The thread side of McpMemorySource.streamByPointId and
 * streamDigestsByPointId: runs the one statement that hashes the rows' point
 * ids (and digests, when asked) and sorts them, on its own read-only
 * connection, and answers each message from the parent with the next page
 * of rows (fewer than a page: the last). Sorting a large range takes seconds
 * of synchronous SQLite; here it holds neither the activity's heartbeats nor
 * its reads of the target.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openReadOnly, pointIdForContentHash, storedDigestOfRow } from './sqlite';

export interface PointOrderJob {
  path: string;
  sql: string;
  params: unknown[];
  pageSize: number;
}

const { path, sql, params, pageSize } = workerData as PointOrderJob;
const db = openReadOnly(path);
db.function('memshift_point_id', { deterministic: true }, (hash: unknown) => pointIdForContentHash(String(hash)));
db.function('memshift_stored_digest', { deterministic: true, varargs: true }, storedDigestOfRow);
const rows = db.prepare(sql).iterate(...params);

parentPort!.on('message', () => {
  const page: unknown[] = [];
  for (let row = rows.next(); !row.done; row = rows.next()) {
    if (page.push(row.value) === pageSize) break;
  }
  parentPort!.postMessage(page);
});
