/**
 * Every file memshift writes goes through these guards: its real path is
 * resolved (symlinks and `..` included), it must lie under one of the worker's
 * MEMSHIFT_WRITE_DIRS when that is set, and it must not be a file the plan
 * names as data (a source database or its -wal/-shm). Copies are byte-exact.
 */
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs/promises';
import path from 'node:path';

/** The real path of `file`, even when it (or some of its parents) does not exist yet. */
export async function realPathOf(file: string): Promise<string> {
  const absolute = path.resolve(file);
  const missing: string[] = [];
  let existing = absolute;
  for (;;) {
    try {
      return path.join(await fs.realpath(existing), ...missing);
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return absolute;
      missing.unshift(path.basename(existing));
      existing = parent;
    }
  }
}

/** Directories the worker's operator allows memshift to write under (MEMSHIFT_WRITE_DIRS, colon-separated). */
function allowedWriteDirs(): string[] {
  return (process.env.MEMSHIFT_WRITE_DIRS ?? '').split(':').filter(Boolean);
}

/** The sidecar files SQLite keeps beside a database in WAL or rollback-journal mode. */
export function sqliteCompanions(file: string): string[] {
  return [file, `${file}-wal`, `${file}-shm`, `${file}-journal`];
}

/**
 * Refuses (non-retryable, naming the plan field) to write `file` when it is
 * outside MEMSHIFT_WRITE_DIRS or is one of `protectedFiles` (after resolving
 * real paths). Returns the real path to write.
 */
export async function assertWritableFile(file: string, field: string, protectedFiles: { file: string; what: string }[] = []): Promise<string> {
  const real = await realPathOf(file);
  const dirs = allowedWriteDirs();
  if (dirs.length) {
    const realDirs = await Promise.all(dirs.map(realPathOf));
    if (!realDirs.some((dir) => real === dir || real.startsWith(`${dir}${path.sep}`))) {
      throw ApplicationFailure.nonRetryable(
        `${field} (${file}) is outside the directories this worker may write (MEMSHIFT_WRITE_DIRS=${dirs.join(':')}); pick a path under one of them.`,
        'WriteOutsideAllowedDirs',
      );
    }
  }
  for (const guarded of protectedFiles) {
    const companions = await Promise.all(sqliteCompanions(guarded.file).map(realPathOf));
    if (companions.includes(real)) {
      throw ApplicationFailure.nonRetryable(
        `${field} (${file}) is ${guarded.what} (${guarded.file}) or one of its SQLite files; writing it would destroy data. Pick another path. Nothing was written.`,
        'PathIsProtected',
      );
    }
  }
  return real;
}

/**
 * Writes `text` to a temporary file beside `file` and renames it into place,
 * so a crash never leaves half a file; both paths go through assertWritableFile.
 */
export async function writeFileAtomically(file: string, text: string, field: string, protectedFiles: { file: string; what: string }[] = []): Promise<void> {
  await assertWritableFile(file, field, protectedFiles);
  await assertWritableFile(`${file}.tmp`, field, protectedFiles);
  await fs.writeFile(`${file}.tmp`, text);
  await fs.rename(`${file}.tmp`, file);
}

/** Byte-exact copy that never replaces an existing file. */
export async function copyFileExclusive(from: string, to: string): Promise<void> {
  await fs.copyFile(from, to, fs.constants.COPYFILE_EXCL);
}
