/** A headless Temporal dev server on free ports for one benchmark run (scripts/temporal-dev-server.sh). */
import { Connection } from '@temporalio/client';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../scripts/embedded-postgres';

export async function startTemporal(): Promise<{ address: string; stop(): void }> {
  const [port, uiPort] = [await freePort(), await freePort()];
  const server = spawn(path.resolve(__dirname, '../scripts/temporal-dev-server.sh'), ['--headless'], {
    env: { ...process.env, TEMPORAL_PORT: String(port), TEMPORAL_UI_PORT: String(uiPort) },
    stdio: 'ignore',
    detached: true,
  });
  const address = `127.0.0.1:${port}`;
  for (let i = 0; i < 120; i++) {
    const ok = await Connection.connect({ address, connectTimeout: 1000 }).then((c) => c.close().then(() => true), () => false);
    if (ok) return { address, stop: () => process.kill(-server.pid!, 'SIGTERM') };
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('Temporal dev server did not start');
}
