/**
 * A real Neo4j for one test file: the NEO4J_URI server when set (credentials
 * from NEO4J_USER / NEO4J_PASSWORD, read by the product code), else an
 * in-process Neo4j 5.26 from scripts/neo4j-harness in a child JVM.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../scripts/embedded-postgres';

export interface TestNeo4j {
  /** bolt:// URI without credentials. */
  uri: string;
  stop(): Promise<void>;
}

const HARNESS_DIR = path.resolve(__dirname, '../../scripts/neo4j-harness');
const HARNESS_CLASS = 'memshift.Neo4jHarness';
/** A cold JVM needs ~7 s on an idle 2-core machine; allow for a busy one. */
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;
/** Small heap, serial GC and C1 only: quicker start and a ~300 MB process on a shared 2-core machine. */
const JVM_OPTIONS = ['-Xms64m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1'];
const READY_LINE = /^NEO4J_READY (bolt:\/\/\S+)$/;
const STDERR_KEPT_CHARS = 8_000;

/** `withAuth`: a harness whose Bolt asks for credentials and accepts none a test has (always the harness, never NEO4J_URI). */
export async function startTestNeo4j(options: { withAuth?: boolean } = {}): Promise<TestNeo4j> {
  const external = process.env.NEO4J_URI;
  if (external && !options.withAuth) return { uri: external, stop: async () => {} };

  if (!existsSync(path.join(HARNESS_DIR, 'target/classes/memshift/Neo4jHarness.class'))) {
    throw new Error('The Neo4j test harness is not built: run scripts/install-neo4j-harness.sh');
  }
  const port = await freePort();
  // The harness puts its store and a log4j config under java.io.tmpdir; one directory per run is removed on stop.
  const workDir = await mkdtemp(path.join(tmpdir(), 'memshift-neo4j-'));
  const classpath = ['target/classes', 'target/dependency/*'].map((entry) => path.join(HARNESS_DIR, entry)).join(path.delimiter);
  // stdin stays a pipe: the harness exits when it closes, so a crashed test run leaves no JVM behind.
  const child = spawn('java', [...JVM_OPTIONS, `-Djava.io.tmpdir=${workDir}`, '-cp', classpath, HARNESS_CLASS, String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NEO4J_HARNESS_AUTH: String(options.withAuth === true) },
  });

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT_CHARS);
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const failure = (what: string) => new Error(`Neo4j harness on port ${port} ${what}; its stderr:\n${stderr || '(empty)'}`);

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(workDir, { recursive: true, force: true });
  };

  let timer: NodeJS.Timeout | undefined;
  try {
    const uri = await Promise.race([
      readyUri(child.stdout),
      exited.then((code) => Promise.reject(failure(`exited (${code}) before it was ready`))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(failure(`was not ready after ${READY_TIMEOUT_MS / 1000}s`)), READY_TIMEOUT_MS);
      }),
      new Promise<never>((_, reject) => child.once('error', (error) => reject(failure(`could not start java: ${error.message}`)))),
    ]);
    return { uri, stop };
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the URI on the ready line; keeps draining stdout afterwards so the pipe never fills. */
function readyUri(stdout: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: stdout });
    lines.on('line', (line) => {
      const match = READY_LINE.exec(line.trim());
      if (match) resolve(match[1]);
    });
  });
}
