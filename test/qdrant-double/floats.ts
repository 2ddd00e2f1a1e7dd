/**
 * JSON numbers as Qdrant 1.19 reads them. Qdrant parses request bodies with
 * serde_json built without `float_roundtrip`, whose `f64_from_parts` is not
 * exact: it reads the number's decimal digits into a u64 significand, rounds
 * that to f64, then multiplies or divides by a power of ten from a table — a
 * second rounding. When the significand needs more than 53 bits (17
 * significant digits), the result can be the double next to the one sent:
 * 1700000000.8524659 comes back as 1700000000.852466.
 *
 * The input is a JS number, so the text Qdrant saw is `String(x)`: what
 * JSON.stringify sent. That text is always well formed with an exponent of
 * at most three digits, so serde's error paths for malformed numbers and
 * huge exponents never apply.
 */

const U64_MAX = 2n ** 64n - 1n;
/** serde_json's POW10 table holds 1e0 … 1e308. */
const LARGEST_TABLE_EXPONENT = 308;
const NUMBER_TEXT = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/;

/** The number Qdrant stores (and later returns) for `x` sent as JSON. */
export function qdrantParsedFloat(x: number): number {
  const text = String(x);
  const parts = NUMBER_TEXT.exec(text);
  if (!parts) throw new RangeError(`${text} is not a finite JSON number`);
  const [, sign, integerDigits, fractionDigits, exponentText] = parts;

  let significand = 0n;
  let exponent = 0;
  let integerOverflowed = false;
  for (const digit of integerDigits) {
    // Once the u64 is full, serde drops the remaining integer digits and counts them in the exponent.
    integerOverflowed ||= wouldOverflowU64(significand, digit);
    if (integerOverflowed) exponent++;
    else significand = significand * 10n + BigInt(digit);
  }
  // An integer that fits in u64 stays exact: serde keeps it as an integer, or (negative beyond i64)
  // rounds it to f64 once, which gives back the double its shortest text came from.
  if (fractionDigits === undefined && exponentText === undefined && !integerOverflowed) return x;

  // Fraction digits are checked one by one again (serde's parse_decimal); the first that overflows ends them.
  for (const digit of fractionDigits ?? '') {
    if (wouldOverflowU64(significand, digit)) break;
    significand = significand * 10n + BigInt(digit);
    exponent--;
  }
  exponent += Number(exponentText ?? 0);

  const magnitude = scaleByPowerOfTen(Number(significand), exponent);
  return sign === '-' ? -magnitude : magnitude;
}

/** Every number in a JSON value (objects and arrays, nested) as Qdrant stores it. */
export function qdrantParsedJson(value: unknown): unknown {
  if (typeof value === 'number') return qdrantParsedFloat(value);
  if (Array.isArray(value)) return value.map(qdrantParsedJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, qdrantParsedJson(item)]));
  }
  return value;
}

function wouldOverflowU64(significand: bigint, digit: string): boolean {
  return significand * 10n + BigInt(digit) > U64_MAX;
}

/**
 * serde's `f64_from_parts` after `significand as f64` (Number(bigint) rounds
 * the same way: nearest, ties to even). Table entries are the correctly
 * rounded doubles of 1eN, so they are parsed from text: `10 ** N` is off by
 * an ulp for some N in V8.
 */
function scaleByPowerOfTen(significand: number, exponent: number): number {
  let f = significand;
  // Past the table, serde divides by 1e308 until the rest fits (only tiny numbers get here).
  while (exponent < -LARGEST_TABLE_EXPONENT) {
    f /= 1e308;
    exponent += LARGEST_TABLE_EXPONENT;
  }
  if (exponent < 0) return f / Number(`1e${-exponent}`);
  f *= Number(`1e${exponent}`);
  // serde answers "number out of range" here; Qdrant would refuse the request.
  if (!Number.isFinite(f)) throw new RangeError(`number out of range: ${significand}e${exponent}`);
  return f;
}
