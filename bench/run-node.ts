/** A node script of a benchmark, run under bench/peak-rss.cjs so its peak RSS is known when it exits. */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..');

/**
 * Runs `args` with tsx; `exited` resolves with its stdout and peak RSS in MB
 * (rejects on a non-zero exit code, not on a signal), `printed(text)` once
 * its stdout holds `text`. `heapMb` caps V8's old generation.
 */
export function runNode(args: string[], env: NodeJS.ProcessEnv, name: string, options: { workDir: string; heapMb?: string }) {
  const rssFile = path.join(options.workDir, `${name}.rss`);
  rmSync(rssFile, { force: true });
  const heapCap = options.heapMb ? [`--max-old-space-size=${options.heapMb}`] : [];
  const child = spawn(process.execPath, [...heapCap, '-r', path.join(__dirname, 'peak-rss.cjs'), '--import', 'tsx', ...args], {
    cwd: root,
    env: { ...process.env, ...env, PEAK_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  const output = new EventEmitter();
  child.stdout.on('data', (d) => {
    stdout += d;
    output.emit('data', stdout);
  });
  const printed = (text: string) =>
    new Promise<void>((resolve) => {
      const check = (all: string) => all.includes(text) && (output.off('data', check), resolve());
      output.on('data', check);
      check(stdout);
    });
  const exited = new Promise<{ stdout: string; peakRssMb: number }>((resolve, reject) =>
    child.once('exit', (code, signal) => {
      if (code !== 0 && signal === null) return reject(new Error(`${name} exited with ${code}`));
      // No file when V8 aborted (out of memory): the process never reached its exit handler.
      resolve({ stdout, peakRssMb: existsSync(rssFile) ? Math.round(Number(readFileSync(rssFile, 'utf8')) / 1024) : NaN });
    }),
  );
  return { child, exited, printed, stdout: () => stdout };
}
