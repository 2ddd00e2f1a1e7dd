/**
 * The live-backend record a cutover rewrites: a small JSON file the memory
 * service (or its deploy tooling) reads to know which backend serves. The
 * version it replaces is kept beside it, byte for byte, so rollback can put
 * it back. Every file written here passes assertWritableFile first.
 */
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import { assertWritableFile, copyFileExclusive, writeFileAtomically } from './files';

export interface LiveBackend {
  kind: string;
  url: string;
  name: string;
  workflowId: string;
  [detail: string]: unknown;
}

/** Files a cutover must never write over (the source database, the backup). */
export type ProtectedFiles = { file: string; what: string }[];

/** Per migration, so a later migration never mistakes an earlier one's saved copy for its own. */
const previousOf = (file: string, workflowId: string) => `${file}.before-${workflowId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;

const writeAtomically = (file: string, text: string, protectedFiles: ProtectedFiles) => writeFileAtomically(file, text, 'cutover.file', protectedFiles);

export async function readLiveBackend(file: string): Promise<LiveBackend | null> {
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  return text ? (JSON.parse(text) as LiveBackend) : null;
}

/**
 * Refuses (non-retryable) a cutover file that memshift could not safely
 * replace: a protected file, a path outside MEMSHIFT_WRITE_DIRS, or an
 * existing file that is not a live-backend JSON object with a `kind`
 * (a database, a config file in another format).
 */
export async function assertLiveBackendFile(file: string, protectedFiles: ProtectedFiles): Promise<void> {
  await assertWritableFile(file, 'cutover.file', protectedFiles);
  const bytes = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (bytes === null) return;
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    // not JSON: refused below
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { kind?: unknown }).kind !== 'string') {
    throw ApplicationFailure.nonRetryable(
      `cutover.file (${file}) exists and is not a live-backend JSON file (an object with a "kind"); memshift will not replace it. Name the file your memory service reads its backend from. Nothing was written.`,
      'CutoverFileNotLiveBackend',
    );
  }
}

export async function recordLiveBackend(file: string, backend: LiveBackend, protectedFiles: ProtectedFiles): Promise<void> {
  await assertLiveBackendFile(file, protectedFiles);
  // Idempotent on retry: the first attempt's saved previous version is never overwritten.
  const saved = previousOf(file, backend.workflowId);
  await assertWritableFile(saved, 'cutover.file', protectedFiles);
  const previousSaved = await fs.stat(saved).then(() => true, () => false);
  if (!previousSaved) {
    const exists = await fs.stat(file).then(() => true, () => false);
    // An empty saved file marks "there was no file before cutover", so rollback removes it.
    if (exists) await copyFileExclusive(file, saved);
    else await fs.writeFile(saved, '', { flag: 'wx' });
  }
  await writeAtomically(file, `${JSON.stringify({ ...backend, cutoverAt: new Date().toISOString() }, null, 2)}\n`, protectedFiles);
}

export async function restoreLiveBackend(file: string, workflowId: string, protectedFiles: ProtectedFiles): Promise<void> {
  const saved = previousOf(file, workflowId);
  const stat = await fs.stat(saved).catch(() => null);
  if (!stat) return; // this migration never cut over, or already restored
  await assertWritableFile(file, 'cutover.file', protectedFiles);
  if (stat.size === 0) {
    await fs.rm(file, { force: true });
  } else {
    await assertWritableFile(`${file}.tmp`, 'cutover.file', protectedFiles);
    await fs.copyFile(saved, `${file}.tmp`);
    await fs.rename(`${file}.tmp`, file);
  }
  await fs.rm(saved);
}

/**
 * After a switch, writes the service already had in flight to the old backend
 * keep landing for a moment: the switch repeats its catch-up (or carry-back)
 * until one round, a pause after the last, moves nothing. Returns how many
 * items all rounds moved.
 */
export async function untilQuiet(round: () => Promise<number>): Promise<number> {
  let total = 0;
  for (let i = 0; i < MAX_SETTLE_ROUNDS; i++) {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const moved = await round();
    total += moved;
    if (moved === 0) break;
  }
  return total;
}

const SETTLE_MS = 1_000;
const MAX_SETTLE_ROUNDS = 5;
