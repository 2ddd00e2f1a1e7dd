/**
 * The `bm25` sparse vector mem0 2.x stores next to each memory's dense vector,
 * computed exactly as fastembed's `SparseTextEmbedding("Qdrant/bm25")` (fastembed
 * 0.9.1, `fastembed/sparse/bm25.py`) does, so that a rebuilt collection scores
 * like one mem0 filled itself:
 *
 *   text → Python-regex tokenizer (non-word chars to spaces, lowercase)
 *        → drop punctuation, NLTK English stop words and tokens over 40 chars
 *        → Snowball English stem → id = |murmur3_32(stem)|
 *        → BM25 term-frequency weight per id (k=1.2, b=0.75, avg_len=256).
 *
 * IDF is applied by Qdrant, so the collection's slot must use `modifier: 'idf'`.
 * Fixtures from the real Python code pin this in test/bm25.test.ts
 * (regenerate with scripts/bm25-reference.py).
 */
import murmurhash from 'murmurhash';
import { stem as porter2 } from 'porter2';

export interface SparseVector {
  indices: number[];
  values: number[];
}

/** Name of the sparse vector slot mem0 creates and queries (`using="bm25"`). */
export const BM25_VECTOR_NAME = 'bm25';
/** Sparse vector params of that slot: Qdrant multiplies the stored weights by IDF. */
export const BM25_SPARSE_VECTOR_PARAMS = { modifier: 'idf' } as const;

// fastembed's Bm25 defaults, which mem0 leaves untouched.
const K = 1.2;
const B = 0.75;
const AVG_LEN = 256;
const TOKEN_MAX_LENGTH = 40;

/**
 * english.txt of the Qdrant/bm25 model: NLTK's English stop word list. The
 * entries with an apostrophe can never match, because the tokenizer has already
 * split such words at the apostrophe; they are kept so the list reads as the source.
 */
export const BM25_ENGLISH_STOPWORDS: readonly string[] = [
  'i', 'me', 'my', 'myself', 'we', 'our', 'ours', 'ourselves', 'you', "you're", "you've", "you'll",
  "you'd", 'your', 'yours', 'yourself', 'yourselves', 'he', 'him', 'his', 'himself', 'she', "she's",
  'her', 'hers', 'herself', 'it', "it's", 'its', 'itself', 'they', 'them', 'their', 'theirs',
  'themselves', 'what', 'which', 'who', 'whom', 'this', 'that', "that'll", 'these', 'those', 'am',
  'is', 'are', 'was', 'were', 'be', 'been', 'being', 'have', 'has', 'had', 'having', 'do', 'does',
  'did', 'doing', 'a', 'an', 'the', 'and', 'but', 'if', 'or', 'because', 'as', 'until', 'while',
  'of', 'at', 'by', 'for', 'with', 'about', 'against', 'between', 'into', 'through', 'during',
  'before', 'after', 'above', 'below', 'to', 'from', 'up', 'down', 'in', 'out', 'on', 'off', 'over',
  'under', 'again', 'further', 'then', 'once', 'here', 'there', 'when', 'where', 'why', 'how', 'all',
  'any', 'both', 'each', 'few', 'more', 'most', 'other', 'some', 'such', 'no', 'nor', 'not', 'only',
  'own', 'same', 'so', 'than', 'too', 'very', 's', 't', 'can', 'will', 'just', 'don', "don't",
  'should', "should've", 'now', 'd', 'll', 'm', 'o', 're', 've', 'y', 'ain', 'aren', "aren't",
  'couldn', "couldn't", 'didn', "didn't", 'doesn', "doesn't", 'hadn', "hadn't", 'hasn', "hasn't",
  'haven', "haven't", 'isn', "isn't", 'ma', 'mightn', "mightn't", 'mustn', "mustn't", 'needn',
  "needn't", 'shan', "shan't", 'shouldn', "shouldn't", 'wasn', "wasn't", 'weren', "weren't", 'won',
  "won't", 'wouldn', "wouldn't",
];
const STOPWORDS = new Set(BM25_ENGLISH_STOPWORDS);

// fastembed works with Python's `re` classes, which differ from JavaScript's:
// Python `\w` is any letter, any number and '_' (JS `\w` is ASCII only), and
// Python `\s` is str.isspace(), which takes \x1c-\x1f and \x85 but not \ufeff.
// Both classes, and toLowerCase() against str.lower(), were checked against
// Python 3.12 on every code point Unicode 15 assigns.
const NOT_WORD_NOR_SPACE =
  /[^\p{L}\p{N}_\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/gu;
const WORD_RUN = /[\p{L}\p{N}_]+/gu;
// fastembed drops a token that is one Unicode punctuation character; of those
// only '_' survives tokenization.
const PUNCTUATION_CHAR = /^\p{P}$/u;
const ASTRAL_CHAR = /[\u{10000}-\u{10FFFF}]/u;

const utf8 = new TextEncoder();

/** `remove_non_alphanumeric` then `SimpleTokenizer.tokenize`: runs of word characters, lowercased. */
function tokenize(text: string): string[] {
  return text.replace(NOT_WORD_NOR_SPACE, ' ').toLowerCase().match(WORD_RUN) ?? [];
}

/**
 * Snowball English (Porter2) as py_rust_stemmers applies it. porter2 measures
 * words in UTF-16 units where rust-stemmers counts characters, so a letter outside
 * the BMP (e.g. 𝐱) would shift its rules; such letters are swapped for unused
 * private-use characters, which the English rules treat alike, and swapped back.
 */
function stem(word: string): string {
  if (!ASTRAL_CHAR.test(word)) return porter2(word);
  const placeholders = new Map<string, string>();
  const originals = new Map<string, string>();
  let next = 0xe000;
  const masked = Array.from(word, (char) => {
    if (char.length === 1) return char;
    let placeholder = placeholders.get(char);
    if (placeholder === undefined) {
      do placeholder = String.fromCharCode(next++);
      while (word.includes(placeholder));
      placeholders.set(char, placeholder);
      originals.set(placeholder, char);
    }
    return placeholder;
  }).join('');
  return Array.from(porter2(masked), (char) => originals.get(char) ?? char).join('');
}

/** `Bm25._stem`: the stems of the tokens that count, in document order. */
function stems(text: string): string[] {
  const kept: string[] = [];
  for (const token of tokenize(text)) {
    if (PUNCTUATION_CHAR.test(token) || STOPWORDS.has(token)) continue;
    // Python's len() counts code points.
    if ([...token].length > TOKEN_MAX_LENGTH) continue;
    const stemmed = stem(token);
    if (stemmed) kept.push(stemmed);
  }
  return kept;
}

/** `abs(mmh3.hash(token))`: signed 32-bit murmur3 (seed 0) of the UTF-8 bytes; may be 2^31. */
export function bm25TokenId(token: string): number {
  return Math.abs(murmurhash.v3(utf8.encode(token), 0) | 0);
}

/**
 * The document ("passage") embedding, as `SparseTextEmbedding("Qdrant/bm25").embed`.
 * Ids are in order of each stem's first occurrence; if two stems hash to the same
 * id, the later stem's weight replaces the earlier one's at the earlier position,
 * as fastembed's dict does. Values are float64, bit-identical to fastembed's.
 */
export function bm25SparseVector(text: string): SparseVector {
  const tokens = stems(text);
  const counts = new Map<string, number>();
  for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
  // Same operation order as fastembed, so the floats match exactly.
  const lengthNorm = K * (1 - B + (B * tokens.length) / AVG_LEN);
  const weights = new Map<number, number>();
  for (const [token, count] of counts) {
    weights.set(bm25TokenId(token), (count * (K + 1)) / (count + lengthNorm));
  }
  return { indices: [...weights.keys()], values: [...weights.values()] };
}

/**
 * The query embedding, as `SparseTextEmbedding("Qdrant/bm25").query_embed`: each
 * distinct id once with weight 1. fastembed returns a Python set's order; this
 * returns first occurrence, which Qdrant does not distinguish.
 * (mem0 2.0.2 itself embeds queries with `embed`, i.e. bm25SparseVector.)
 */
export function bm25QueryVector(text: string): SparseVector {
  const indices = [...new Set(stems(text).map(bm25TokenId))];
  return { indices, values: indices.map(() => 1) };
}
