/**
 * The live-backend record a cutover rewrites: a small JSON file the memory
 * service (or its deploy tooling) reads to know which backend serves. The
 * version it replaces is kept beside it so rollback can put it back.
 */
import fs from 'node:fs/promises';

export interface LiveBackend {
  kind: string;
  url: string;
  name: string;
  workflowId: string;
  [detail: string]: unknown;
}

/** Per migration, so a later migration never mistakes an earlier one's saved copy for its own. */
const previousOf = (file: string, workflowId: string) => `${file}.before-${workflowId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
/** Marks "there was no file before cutover" so rollback removes it. */
const NO_PREVIOUS = '';

async function writeAtomically(file: string, text: string): Promise<void> {
  await fs.writeFile(`${file}.tmp`, text);
  await fs.rename(`${file}.tmp`, file);
}

export async function readLiveBackend(file: string): Promise<LiveBackend | null> {
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  return text ? (JSON.parse(text) as LiveBackend) : null;
}

export async function recordLiveBackend(file: string, backend: LiveBackend): Promise<void> {
  // Idempotent on retry: the first attempt's saved previous version is never overwritten.
  const saved = previousOf(file, backend.workflowId);
  const previousSaved = await fs.stat(saved).then(() => true, () => false);
  if (!previousSaved) {
    const current = await fs.readFile(file, 'utf8').catch(() => NO_PREVIOUS);
    await writeAtomically(saved, current);
  }
  await writeAtomically(file, `${JSON.stringify({ ...backend, cutoverAt: new Date().toISOString() }, null, 2)}\n`);
}

export async function restoreLiveBackend(file: string, workflowId: string): Promise<void> {
  const saved = previousOf(file, workflowId);
  const previous = await fs.readFile(saved, 'utf8').catch(() => null);
  if (previous === null) return; // this migration never cut over
  if (previous === NO_PREVIOUS) await fs.rm(file, { force: true });
  else await writeAtomically(file, previous);
  await fs.rm(saved);
}
