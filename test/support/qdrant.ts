/**
 * A Qdrant for one test file: the real server at QDRANT_URL when set
 * (`docker compose up qdrant`), else the in-process test double.
 * Fault injection exists only on the double; tests that need it skip otherwise.
 */
import { startQdrantDouble, type QdrantDouble } from '../qdrant-double/server';

export interface TestQdrant {
  url: string;
  /** Its gRPC endpoint, when asked for: QDRANT_GRPC_URL (default: QDRANT_URL's host, port 6334), or the double's. */
  grpcUrl?: string;
  /** The double, when the tests run against it. */
  double: QdrantDouble | null;
  stop(): Promise<void>;
}

export async function startTestQdrant(options: { grpc?: boolean } = {}): Promise<TestQdrant> {
  const real = process.env.QDRANT_URL;
  if (real) {
    const grpcUrl = options.grpc ? (process.env.QDRANT_GRPC_URL ?? Object.assign(new URL(real), { port: '6334' }).origin) : undefined;
    return { url: real, grpcUrl, double: null, stop: async () => {} };
  }
  const double = await startQdrantDouble({ grpc: options.grpc });
  return { url: double.url, grpcUrl: double.grpcUrl, double, stop: () => double.stop() };
}
