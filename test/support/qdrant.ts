/**
 * A Qdrant for one test file: the real server at QDRANT_URL when set
 * (`docker compose up qdrant`), else the in-process test double.
 * Fault injection exists only on the double; tests that need it skip otherwise.
 */
import { startQdrantDouble, type QdrantDouble } from '../qdrant-double/server';

export interface TestQdrant {
  url: string;
  /** The double, when the tests run against it. */
  double: QdrantDouble | null;
  stop(): Promise<void>;
}

export async function startTestQdrant(): Promise<TestQdrant> {
  if (process.env.QDRANT_URL) return { url: process.env.QDRANT_URL, double: null, stop: async () => {} };
  const double = await startQdrantDouble();
  return { url: double.url, double, stop: () => double.stop() };
}
