/**
 * Re-embedding through an OpenAI-compatible `POST {url}/embeddings` endpoint,
 * for migrations that change the embedding model. The API key comes from the
 * worker's MEMSHIFT_EMBEDDINGS_API_KEY, never from the plan.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { MemoryPoint } from './stores/contract';

export interface EmbeddingModel {
  url: string;
  model: string;
  dimensions: number;
}

export async function embedTexts(model: EmbeddingModel, texts: string[]): Promise<number[][]> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const key = process.env.MEMSHIFT_EMBEDDINGS_API_KEY;
  if (key) headers.authorization = `Bearer ${key}`;
  const endpoint = `${model.url.replace(/\/$/, '')}/embeddings`;
  const response = await fetch(endpoint, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: model.model, input: texts }),
  });
  if (!response.ok) {
    const message = `Embeddings endpoint ${endpoint} answered ${response.status} for model '${model.model}'`;
    // 429 and 5xx pass; any other 4xx is a plan or key problem that retrying won't fix.
    if (response.status >= 400 && response.status < 500 && response.status !== 429) {
      throw ApplicationFailure.nonRetryable(message, 'EmbeddingsRejected');
    }
    throw new Error(message);
  }
  const body = (await response.json()) as { data: { index: number; embedding: number[] }[] };
  const vectors = [...body.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
  if (vectors.length !== texts.length) throw new Error(`Embeddings endpoint returned ${vectors.length} vectors for ${texts.length} texts`);
  const wrong = vectors.find((v) => v.length !== model.dimensions);
  if (wrong) {
    throw ApplicationFailure.nonRetryable(
      `Model '${model.model}' returns ${wrong.length}-dim vectors but the plan says reembed.dimensions=${model.dimensions}`,
      'DimensionMismatch',
    );
  }
  return vectors;
}

/** A copy transform that replaces each point's vector with one embedded from `payload[textField]`. */
export function reembedPoints(model: EmbeddingModel, textField = 'content') {
  return async (points: MemoryPoint[]): Promise<MemoryPoint[]> => {
    const vectors = await embedTexts(model, points.map((p) => String(p.payload[textField] ?? '')));
    return points.map((p, i) => ({ ...p, vector: vectors[i] }));
  };
}
