/**
 * bm25SparseVector/bm25QueryVector against vectors produced by fastembed's own
 * SparseTextEmbedding("Qdrant/bm25") (fixtures from scripts/bm25-reference.py).
 */
import { describe, expect, it } from 'vitest';
import {
  BM25_ENGLISH_STOPWORDS,
  BM25_SPARSE_VECTOR_PARAMS,
  BM25_VECTOR_NAME,
  bm25QueryVector,
  bm25SparseVector,
  bm25TokenId,
} from '../activities/bm25';
import reference from './fixtures/bm25-reference.json';

function expectClose(actual: number[], expected: number[]) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) => {
    expect(Math.abs(value - expected[i]), `value #${i}: ${value} vs ${expected[i]}`).toBeLessThanOrEqual(
      1e-6 * Math.abs(expected[i]),
    );
  });
}

describe('bm25 against fastembed ' + reference.fastembed, () => {
  it('uses the Qdrant/bm25 English stop words', () => {
    expect([...BM25_ENGLISH_STOPWORDS]).toEqual(reference.stopwords);
  });

  describe.each(reference.cases.map((c) => [JSON.stringify(c.text).slice(0, 60), c] as const))('%s', (_, c) => {
    it('document vector: same ids in the same order, same weights', () => {
      const vector = bm25SparseVector(c.text);
      expect(vector.indices).toEqual(c.document.indices);
      expectClose(vector.values, c.document.values);
    });

    it('query vector: same distinct ids, weight 1', () => {
      const vector = bm25QueryVector(c.text);
      const pairs = vector.indices.map((id, i) => [id, vector.values[i]]).sort((a, b) => a[0] - b[0]);
      expect(pairs.map(([id]) => id)).toEqual(c.query.indices);
      expect(pairs.map(([, value]) => value)).toEqual(c.query.values);
    });
  });

  it('covers the edge cases the fixtures are meant to pin', () => {
    const texts = reference.cases.map((c) => c.text);
    expect(texts).toContain('');
    expect(texts.some((t) => [...t].some((ch) => ch.codePointAt(0)! > 0xffff))).toBe(true);
    // a token whose signed hash is -2^31, so its id needs the full u32 range
    expect(bm25TokenId('ad1u66pi')).toBe(2 ** 31);
    // two stems sharing an id: the last one's weight wins, at the first one's position
    expect(bm25TokenId('haught')).toBe(bm25TokenId('leeway'));
    expect(bm25SparseVector('haught leeway leeway').values).not.toEqual(bm25SparseVector('leeway leeway haught').values);
  });
});

describe('bm25 slot config', () => {
  it('matches the slot mem0 2.x creates', () => {
    expect(BM25_VECTOR_NAME).toBe('bm25');
    expect(BM25_SPARSE_VECTOR_PARAMS).toEqual({ modifier: 'idf' });
  });
});
