/**
 * What a person sees in the Temporal Web UI for a running migration, checked
 * in a real browser (Debian's chromium-headless-shell, installed by
 * scripts/install.sh): the run's static summary, its phase in the current
 * details, and the copy's live progress from its heartbeat. A dev server of
 * its own with the UI on; MEMSHIFT_SCREENSHOT=path saves the page as a PNG
 * (docs/web-ui.png was taken this way).
 */
import { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'puppeteer-core' with { 'resolution-mode': 'import' };
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../scripts/embedded-postgres';
import { generateMcpStore } from '../scripts/generate-mcp-store';
import { createMemshiftWorker } from '../workers/worker';
import { pauseUpdate, rejectUpdate } from '../workflows/messages';
import { MEMSHIFT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { sqliteVecMigration } from '../workflows/sqlite-vec-migration';
import { tempDir, uniqueQueue, waitForStatus } from './support/harness';
import { uniqueName } from './support/postgres';
import { startTestQdrant, type TestQdrant } from './support/qdrant';
import { TEMPORAL_CLI } from './support/temporal';

const CHROMIUM = process.env.MEMSHIFT_CHROMIUM ?? '/usr/bin/chromium-headless-shell';
const MEMORIES = 3_000;

let env: TestWorkflowEnvironment;
let uiPort: number;
let qdrant: TestQdrant;
let browser: Browser;
let worker: Awaited<ReturnType<typeof createMemshiftWorker>>;
let running: Promise<void>;
const taskQueue = uniqueQueue('web-ui');

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`No browser at ${CHROMIUM}: run scripts/install.sh (it installs chromium-headless-shell) or set MEMSHIFT_CHROMIUM.`);
  uiPort = await freePort();
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: TEMPORAL_CLI },
      searchAttributes: MEMSHIFT_SEARCH_ATTRIBUTES,
      ui: true,
      uiPort,
      extraArgs: ['--log-level', 'error'],
    },
  });
  qdrant = await startTestQdrant();
  worker = await createMemshiftWorker({
    connectionOptions: { address: env.address },
    namespace: 'default',
    taskQueue,
    workflowBundlePath: process.env.MEMSHIFT_WORKFLOW_BUNDLE,
  });
  running = worker.run();
  const { default: puppeteer } = await import('puppeteer-core'); // an ES module
  browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  worker?.worker.shutdown();
  await running;
  await qdrant?.stop();
  await env?.teardown();
});

it("shows a running migration's summary, phase and live copy progress", async () => {
  const dir = tempDir();
  const sourcePath = path.join(dir, 'sqlite_vec.db');
  generateMcpStore(sourcePath, { count: MEMORIES, dimensions: 8, deletedEvery: 0 });
  qdrant.double?.faults.set({ latencyMs: 30, onlyPaths: /\/points/ });
  const client = new Client({ connection: env.connection });
  const workflowId = uniqueName('web-ui');
  const handle = await client.workflow.start(sqliteVecMigration, {
    taskQueue,
    workflowId,
    staticSummary: 'sqliteVecMigration — plan web-ui-check',
    args: [
      {
        source: { path: sourcePath },
        target: { kind: 'qdrant', url: qdrant.url, collection: uniqueName('memories') },
        copy: { batchSize: 20, concurrency: 1 },
        cutover: { file: path.join(dir, 'live.json') },
      },
    ],
  });
  try {
    const live = await waitForStatus(handle, (s) => s.phase === 'copy' && s.copy.copied >= 200);
    await handle.executeUpdate(pauseUpdate, { args: [{ by: 'ops' }] }); // hold the page still
    await new Promise((r) => setTimeout(r, 3_000)); // the paused heartbeat reaches the server

    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1600 });
    await page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows/${workflowId}`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    // The UI shows summary and current details under "User Metadata", the heartbeat under "Pending Activities".
    const metadata = await showTab(page, 'User Metadata', 'plan web-ui-check');
    await page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows/${workflowId}/${handle.firstExecutionRunId}/pending-activities`, { waitUntil: 'domcontentloaded' });
    const pending = await textShowing(page, 'copySqliteVecPoints');
    if (process.env.MEMSHIFT_SCREENSHOT) await page.screenshot({ path: process.env.MEMSHIFT_SCREENSHOT as `${string}.png`, fullPage: true });
    const text = `${metadata}\n${pending}`;

    expect(text).toContain('sqliteVecMigration — plan web-ui-check'); // static summary
    expect(text).toMatch(/sqlite-vec.*sqlite:\/\//s); // current details: runbook, source → target
    expect(text).toMatch(/phase: copy/);
    expect(text).toContain('PAUSED');
    expect(text).toContain('copySqliteVecPoints'); // the pending copy activity…
    expect(text).toMatch(/"?copied"?\s*:\s*\d+/); // …with its heartbeat: live progress
    expect(live.copy.copied).toBeLessThan(MEMORIES);
  } finally {
    qdrant.double?.faults.clear();
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'ops' }] }).catch(() => handle.terminate());
  }
});

/** The text of the page and its frames (the UI renders markdown metadata in a sandboxed frame). */
async function pageText(page: Page): Promise<string> {
  const texts = await Promise.all(page.frames().map((frame) => (frame.evaluate('document.body ? document.body.innerText : ""') as Promise<string>).catch(() => '')));
  return texts.join('\n');
}

async function textShowing(page: Page, wanted: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await pageText(page);
    if (text.includes(wanted)) return text;
    if (Date.now() > deadline) throw new Error(`The Web UI page never showed '${wanted}'; it showed:\n${text.slice(0, 2_000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function showTab(page: Page, tab: string, wanted: string): Promise<string> {
  await page.locator(`::-p-text(${tab})`).click();
  return textShowing(page, wanted);
}
