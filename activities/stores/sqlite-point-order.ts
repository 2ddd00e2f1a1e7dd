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
import { addPointIdFunction, chunkVectorReaders, openReadOnly, storedDigestOfRow } from './sqlite';

/** Where sqlite-vec keeps the vectors, read a chunk at a time (vectorChunksOf in sqlite.ts). */
export interface VectorChunks {
  table: string;
  vectorBytes: number;
}

export interface PointOrderJob {
  path: string;
  sql: string;
  params: unknown[];
  pageSize: number;
  /** When set, memshift_stored_digest takes a row's `chunk_id, chunk_offset` and reads its vector from these chunks. */
  chunks?: VectorChunks;
}

const { path, sql, params, pageSize, chunks } = workerData as PointOrderJob;
const db = openReadOnly(path);
addPointIdFunction(db);
db.function('memshift_stored_digest', { deterministic: true, varargs: true }, chunks ? digestOfChunkedRow(chunks) : storedDigestOfRow);
const rows = db.prepare(sql).iterate(...params);

parentPort!.on('message', () => {
  const page: unknown[] = [];
  for (let row = rows.next(); !row.done; row = rows.next()) {
    if (page.push(row.value) === pageSize) break;
  }
  parentPort!.postMessage(page);
});

/**
 * storedDigestOfRow, but given the place of the row's vector rather than the
 * vector: handing each vector to SQLite and back would copy it twice and
 * cost a second call into JavaScript per row.
 *
 * A function cannot read through the connection whose statement calls it,
 * so chunks come through a second one. Rows arrive in primary-key order,
 * which is the order vectors fill chunks in: the last chunk read is kept.
 * The second connection's snapshot begins with its first read, just after
 * the statement's; a row the service changes in between carries an
 * updated_at the comparison already counts as written since.
 */
function digestOfChunkedRow(chunks: VectorChunks): (...values: unknown[]) => string {
  const chunkDb = openReadOnly(path);
  chunkDb.exec('BEGIN');
  const vectorAt = chunkVectorReaders(chunkDb, chunks)();
  return (...values) => {
    const [id, offset] = values.splice(-2, 2);
    // A slot its chunk lacks digests as no vector: the digests differ, and the point is read whole through vec0.
    return storedDigestOfRow(...values, id === null ? null : (vectorAt(Number(id), Number(offset)) ?? null));
  };
}
