/**
 * An in-memory Qdrant test double on node:http: the REST subset memshift
 * uses, with Qdrant's JSON shapes and status codes, plus fault injection and
 * per-route counters that tests drive from their own process.
 *
 * In a test:   const qdrant = await startQdrantDouble();  … qdrant.url …
 *              ({ grpc: true } adds the gRPC surface at qdrant.grpcUrl; see grpc.ts)
 * Standalone:  node --import tsx test/qdrant-double/server.ts --port 6333
 *              (prints QDRANT_DOUBLE_URL=http://127.0.0.1:6333 and
 *              QDRANT_DOUBLE_GRPC_URL=… on another free port)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { QdrantApiError } from './errors';
import { FaultInjector, RequestStats } from './faults';
import type { GrpcSurface } from './grpc';
import { ROUTES, type Reply, type Route } from './routes';
import { QdrantState } from './state';

export type { FaultSettings, RouteCounters } from './faults';

export interface QdrantDoubleOptions {
  /** 0 or absent: any free port. */
  port?: number;
  /** When set, requests without this `api-key` header get 401, as from a secured Qdrant. */
  apiKey?: string;
  /** Also serve gRPC (Points.Upsert/Scroll/Count) on a free port, on the same collections. */
  grpc?: boolean;
}

export interface QdrantDouble {
  url: string;
  /** Set when started with `grpc: true`. */
  grpcUrl?: string;
  faults: FaultInjector;
  stats: RequestStats;
  stop(): Promise<void>;
}

interface MatchedRoute {
  route: Route | undefined;
  /** Counter key: "METHOD /template", or "METHOD <unknown>" for paths the double does not serve. */
  key: string;
  params: Record<string, string>;
}

const COMPILED_ROUTES = ROUTES.map((route) => ({
  route,
  pattern: new RegExp(`^${route.template.replace(/\{name\}/g, '([^/]+)')}/?$`),
}));

function matchRoute(method: string, path: string): MatchedRoute {
  for (const { route, pattern } of COMPILED_ROUTES) {
    const match = route.method === method ? pattern.exec(path) : null;
    if (match) {
      const params: Record<string, string> = match[1] === undefined ? {} : { name: decodeURIComponent(match[1]) };
      return { route, key: `${method} ${route.template}`, params };
    }
  }
  return { route: undefined, key: `${method} <unknown>`, params: {} };
}

export async function startQdrantDouble(options: QdrantDoubleOptions = {}): Promise<QdrantDouble> {
  const state = new QdrantState();
  const faults = new FaultInjector();
  const stats = new RequestStats();
  const server = createServer((req, res) => {
    handleRequest({ req, res, state, faults, stats, apiKey: options.apiKey }).catch((error: unknown) => {
      // Only a bug in the double gets here; answer like Qdrant's internal errors do.
      if (!res.headersSent) sendJson(res, 500, errorBody(`Service internal error: ${String(error)}`, 0));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  // Loaded only when asked for: REST-only doubles need nothing from the gRPC packages.
  const grpc: GrpcSurface | undefined = options.grpc ? await (await import('./grpc.js')).startGrpcSurface(state, { apiKey: options.apiKey }) : undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    grpcUrl: grpc?.url,
    faults,
    stats,
    stop: async () => {
      await Promise.all([
        new Promise<void>((resolve, reject) => {
          server.close((error) => (error ? reject(error) : resolve()));
          server.closeAllConnections();
        }),
        grpc?.stop(),
      ]);
    },
  };
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  state: QdrantState;
  faults: FaultInjector;
  stats: RequestStats;
  apiKey: string | undefined;
}

async function handleRequest({ req, res, state, faults, stats, apiKey }: Exchange): Promise<void> {
  const started = process.hrtime.bigint();
  const url = new URL(req.url ?? '/', 'http://double');
  const matched = matchRoute(req.method ?? 'GET', url.pathname);
  stats.record(matched.key, 'requests');
  const rawBody = await readBody(req);

  const fault = faults.decide(url.pathname);
  if (fault.delayMs > 0) await sleep(fault.delayMs);
  if (fault.action === 'drop' && !fault.dropAfterApplying) return dropConnection(req, stats, matched.key);
  if (fault.action === 'fail503') {
    stats.record(matched.key, 'injected503');
    return send(res, { status: 503, error: 'Service Unavailable: injected by the Qdrant test double' }, started);
  }
  const outcome = isAuthorized(req, url.pathname, apiKey)
    ? execute(matched, rawBody, url, state, fault.corruptPayloadField)
    : { status: 401, error: 'Must provide an API key or an Authorization bearer token' };
  if (fault.action === 'drop') return dropConnection(req, stats, matched.key);
  await fault.afterHandling?.(url.pathname);
  send(res, outcome, started);
}

type Outcome = { status: 200; reply: Reply } | { status: number; error: string };

/** Qdrant leaves its root and health check open; everything else needs the key. */
const OPEN_PATHS = new Set(['/', '/healthz']);

function isAuthorized(req: IncomingMessage, path: string, apiKey: string | undefined): boolean {
  return apiKey === undefined || OPEN_PATHS.has(path) || req.headers['api-key'] === apiKey || req.headers.authorization === `Bearer ${apiKey}`;
}

function execute(matched: MatchedRoute, rawBody: string, url: URL, state: QdrantState, corruptPayloadField: string | undefined): Outcome {
  if (!matched.route) {
    return { status: 404, error: `Not found: ${matched.key.replace('<unknown>', url.pathname)} is not served by the Qdrant test double` };
  }
  try {
    const body = parseBody(rawBody);
    return { status: 200, reply: matched.route.handle({ state, params: matched.params, body, query: url.searchParams, corruptPayloadField }) };
  } catch (error) {
    if (error instanceof QdrantApiError) return { status: error.status, error: error.message };
    throw error;
  }
}

/** Qdrant's envelopes: {result, status: "ok", time} or {status: {error}, time}; raw replies as they are. */
function send(res: ServerResponse, outcome: Outcome, started: bigint): void {
  const time = elapsed(started);
  if ('error' in outcome) return sendJson(res, outcome.status, errorBody(outcome.error, time));
  const { reply } = outcome;
  if ('result' in reply) return sendJson(res, 200, { result: reply.result, status: 'ok', time });
  if (typeof reply.raw === 'string') return sendText(res, 200, reply.raw);
  sendJson(res, 200, reply.raw);
}

function parseBody(raw: string): Record<string, any> {
  if (raw.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (error) {
    throw new QdrantApiError(400, `Format error in JSON body: ${(error as Error).message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new QdrantApiError(400, 'Format error in JSON body: expected a JSON object');
  }
  return body as Record<string, any>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function dropConnection(req: IncomingMessage, stats: RequestStats, routeKey: string): void {
  stats.record(routeKey, 'dropped');
  req.socket.destroy();
}

function errorBody(message: string, time: number): Record<string, unknown> {
  return { status: { error: message }, time };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function elapsed(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function portFromArgs(args: string[]): number {
  const index = args.indexOf('--port');
  if (index === -1) return 0;
  const port = Number(args[index + 1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port needs a number from 0 to 65535, got ${args[index + 1]}`);
  return port;
}

async function runStandalone(): Promise<void> {
  const double = await startQdrantDouble({ port: portFromArgs(process.argv.slice(2)), grpc: true });
  console.log(`QDRANT_DOUBLE_URL=${double.url}`);
  console.log(`QDRANT_DOUBLE_GRPC_URL=${double.grpcUrl}`);
  const shutdown = () => void double.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

if (require.main === module) {
  runStandalone().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
