// Longest common subsequence length for ROUGE-L, without the O(n·m) table on long texts.
//
// Exact LCS length takes quadratic time in the worst case (no algorithm is known to do better),
// so this picks, per pair, whichever exact method is cheapest for *that* pair, and stops at a
// budget instead of running for minutes:
//   - the common prefix and suffix are matched first, and words that occur on one side only are
//     dropped (neither can change the LCS);
//   - Hunt–Szymanski (patience-style binary search over match positions): O((r + n) log n) for r
//     matching word pairs, fast when few words recur on both sides;
//   - a bit-parallel row update (Allison–Dix/Hyyrö): n·⌈m/32⌉ word operations whatever r is;
//   - Myers' O((n+m)·D) greedy diff, fast when the two texts differ by few (D) words.
// When even the cheapest exceeds the budget, ROUGE-L is taken over a prefix of each text that
// fits it, and the caller says so (see `lcsWithinBudget`).

/**
 * Work one LCS may take, in cells of the textbook dynamic programme (a few nanoseconds each): about
 * half a second. Typical answers (hundreds of words) cost under a million; two unrelated texts of
 * about 40,000 words each, or two 1 MB texts that differ in a few thousand words, still fit.
 */
export const LCS_BUDGET = 150_000_000;

/** Cost of one step of each method in DP cells, measured on Node 20 (scripts/bench-eval.mjs). */
const COST = { dp: 1, bitWord: 2.5, huntStep: 1.2, myersStep: 3.5 } as const;

export type LcsMethod = 'trivial' | 'dp' | 'hunt-szymanski' | 'bit-parallel' | 'myers';

export interface LcsResult {
  readonly length: number;
  readonly method: LcsMethod;
}

export interface CappedLcsResult extends LcsResult {
  /** Words of `x` and `y` the LCS was taken over: fewer than given when the whole pair exceeded the budget. */
  readonly xWords: number;
  readonly yWords: number;
  /** Estimated cost of the exact LCS of the whole pair, in DP cells, when it was capped. */
  readonly wholeCost?: number;
}

/** Common prefix and suffix lengths (they never overlap). */
function trimCommon<T>(x: ArrayLike<T>, y: ArrayLike<T>): { prefix: number; suffix: number } {
  const limit = Math.min(x.length, y.length);
  let prefix = 0;
  while (prefix < limit && x[prefix] === y[prefix]) prefix++;
  let suffix = 0;
  while (suffix < limit - prefix && x[x.length - 1 - suffix] === y[y.length - 1 - suffix]) suffix++;
  return { prefix, suffix };
}

/** Both sides as integer symbols, keeping only the words that occur on both. */
interface Encoded {
  readonly a: Int32Array;
  readonly b: Int32Array;
  readonly symbols: number;
  /** Matching pairs: Σ over symbols of count in a × count in b. */
  readonly pairs: number;
  /** An upper bound of the LCS: Σ over symbols of the smaller count. */
  readonly bound: number;
}

function encode(x: readonly string[], y: readonly string[]): Encoded {
  const ids = new Map<string, number>();
  const inY: number[] = [];
  for (const word of y) {
    let id = ids.get(word);
    if (id === undefined) {
      id = ids.size;
      ids.set(word, id);
      inY.push(0);
    }
    inY[id]!++;
  }
  const inX = new Array<number>(ids.size).fill(0);
  const aList: number[] = [];
  for (const word of x) {
    const id = ids.get(word);
    if (id === undefined) continue;
    inX[id]!++;
    aList.push(id);
  }
  const bList: number[] = [];
  let pairs = 0;
  let bound = 0;
  for (let id = 0; id < inX.length; id++) {
    pairs += inX[id]! * inY[id]!;
    bound += Math.min(inX[id]!, inY[id]!);
  }
  for (const word of y) {
    const id = ids.get(word)!;
    if (inX[id]! > 0) bList.push(id);
  }
  return { a: Int32Array.from(aList), b: Int32Array.from(bList), symbols: ids.size, pairs, bound };
}

/** Textbook two-row dynamic programme. */
export function dpLength(a: Int32Array, b: Int32Array): number {
  let previous = new Int32Array(b.length + 1);
  let current = new Int32Array(b.length + 1);
  for (let i = 0; i < a.length; i++) {
    const ai = a[i]!;
    for (let j = 1; j <= b.length; j++) {
      current[j] = ai === b[j - 1] ? previous[j - 1]! + 1 : Math.max(previous[j]!, current[j - 1]!);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length]!;
}

/**
 * Hunt–Szymanski: `tails[k]` is the smallest position in `b` at which a common subsequence of
 * length k+1 can end. Each match (i, j), visited with j descending within a row so one word of `a`
 * is used once, lowers the first tail ≥ j — a binary search, as in patience sorting.
 */
export function huntSzymanskiLength(a: Int32Array, b: Int32Array, symbols: number): number {
  // Positions of each symbol in b, ascending, in one array (counting sort).
  const start = new Int32Array(symbols + 1);
  for (let j = 0; j < b.length; j++) start[b[j]! + 1]!++;
  for (let s = 0; s < symbols; s++) start[s + 1]! += start[s]!;
  const positions = new Int32Array(b.length);
  const fill = start.slice(0, symbols);
  for (let j = 0; j < b.length; j++) positions[fill[b[j]!]!++] = j;

  const tails = new Int32Array(Math.min(a.length, b.length));
  let length = 0;
  for (let i = 0; i < a.length; i++) {
    const s = a[i]!;
    for (let p = start[s + 1]! - 1; p >= start[s]!; p--) {
      const j = positions[p]!;
      let lo = 0;
      let hi = length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (tails[mid]! < j) lo = mid + 1;
        else hi = mid;
      }
      tails[lo] = j;
      if (lo === length) length++;
    }
  }
  return length;
}

/**
 * Bit-parallel LCS over 32-bit words: bit j of V is 0 where the LCS of the rows so far gains at
 * b[j]; each row of `a` updates V = (V + (V & M)) | (V & ~M) with M the positions of that word in
 * `b`, the addition carrying across words. The LCS length is the number of zero bits.
 */
export function bitParallelLength(a: Int32Array, b: Int32Array, symbols: number): number {
  const words = Math.ceil(b.length / 32);
  const count = new Int32Array(symbols);
  for (let j = 0; j < b.length; j++) count[b[j]!]!++;
  // Frequent words get a stored match vector; rarer ones are written into a scratch vector and
  // cleared again, which costs fewer than words/4 operations a row (and bounds memory to ~4·|b|).
  const denseFrom = Math.max(1, words >>> 2);
  const dense = new Map<number, Uint32Array>();
  const sparse = new Map<number, number[]>();
  for (let j = 0; j < b.length; j++) {
    const s = b[j]!;
    if (count[s]! >= denseFrom) {
      let v = dense.get(s);
      if (!v) dense.set(s, (v = new Uint32Array(words)));
      v[j >>> 5]! |= 1 << (j & 31);
    } else {
      let list = sparse.get(s);
      if (!list) sparse.set(s, (list = []));
      list.push(j);
    }
  }
  const scratch = new Uint32Array(words);
  const v = new Uint32Array(words).fill(0xffffffff);
  for (let i = 0; i < a.length; i++) {
    const s = a[i]!;
    let m = dense.get(s);
    const list = m ? undefined : sparse.get(s);
    // A word absent from b leaves V as it is.
    if (!m && !list) continue;
    if (list) {
      for (const j of list) scratch[j >>> 5]! |= 1 << (j & 31);
      m = scratch;
    }
    let carry = 0;
    for (let w = 0; w < words; w++) {
      const vw = v[w]!;
      const mw = m![w]!;
      // `&` yields a signed 32-bit value; >>> 0 keeps the sum of unsigned words.
      const sum = vw + ((vw & mw) >>> 0) + carry;
      carry = sum > 0xffffffff ? 1 : 0;
      v[w] = (sum | (vw & ~mw)) >>> 0;
    }
    if (list) for (const j of list) scratch[j >>> 5] = 0;
  }
  let zeros = 0;
  for (let w = 0; w < words; w++) {
    let x = ~v[w]! >>> 0;
    while (x !== 0) {
      x = (x & (x - 1)) >>> 0;
      zeros++;
    }
  }
  return zeros;
}

/**
 * Myers' greedy shortest edit script (insertions and deletions only): the LCS is (n + m − D) / 2.
 * `reach[k]` is the furthest x reached on diagonal k = x − y; moves that would leave the grid are
 * not taken. Gives up, returning undefined, once it has taken `maxWork` steps.
 */
export function myersLength(a: Int32Array, b: Int32Array, maxWork: number): number | undefined {
  const n = a.length;
  const m = b.length;
  const maxD = Math.min(n + m, Math.floor(Math.sqrt(2 * maxWork)) + 1);
  const offset = maxD + 1;
  const reach = new Int32Array(2 * maxD + 3).fill(-1);
  let work = 0;
  for (let d = 0; d <= maxD; d++) {
    for (let k = -d; k <= d; k += 2) {
      if (k < -m || k > n) continue;
      let x = d === 0 ? 0 : -1;
      if (d > 0) {
        const down = reach[offset + k + 1]!; // from diagonal k+1, one more word of b
        const right = reach[offset + k - 1]!; // from diagonal k-1, one more word of a
        if (down >= 0 && down - k <= m) x = down;
        if (right >= 0 && right + 1 <= n && right + 1 > x) x = right + 1;
        if (x < 0) continue;
      }
      let y = x - k;
      const from = x;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      work += x - from + 1;
      reach[offset + k] = x;
      if (x === n && y === m) return (n + m - d) / 2;
    }
    if (work > maxWork) return undefined;
  }
  return undefined;
}

function costs(n: number, m: number, pairs: number): { dp: number; bit: number; hunt: number } {
  const long = Math.max(n, m);
  const short = Math.min(n, m);
  return {
    dp: n * m * COST.dp,
    bit: short * Math.ceil(long / 32) * COST.bitWord + n + m,
    hunt: pairs * Math.max(1, Math.log2(short + 1)) * COST.huntStep + n + m,
  };
}

/**
 * LCS length of `x` and `y` if some exact method finishes within `budget`; otherwise only the
 * cheapest method's estimated cost (for the message that says the pair was capped).
 */
export function lcsExact(x: readonly string[], y: readonly string[], budget = Number.POSITIVE_INFINITY): (LcsResult & { cost: number }) | { cost: number } {
  const { prefix, suffix } = trimCommon(x, y);
  const common = prefix + suffix;
  if (common === x.length || common === y.length) return { length: common, method: 'trivial', cost: 0 };
  const { a: a0, b: b0, symbols, pairs, bound } = encode(x.slice(prefix, x.length - suffix), y.slice(prefix, y.length - suffix));
  if (a0.length === 0 || b0.length === 0) return { length: common, method: 'trivial', cost: 0 };
  // Dropping one-sided words can expose a new common prefix or suffix.
  const inner = trimCommon(a0, b0);
  const a = a0.subarray(inner.prefix, a0.length - inner.suffix);
  const b = b0.subarray(inner.prefix, b0.length - inner.suffix);
  const matched = common + inner.prefix + inner.suffix;
  if (a.length === 0 || b.length === 0) return { length: matched, method: 'trivial', cost: 0 };

  const c = costs(a.length, b.length, pairs);
  const cheapest = Math.min(c.dp, c.bit, c.hunt);
  if (cheapest <= budget) {
    // Rows over the shorter side, so the bit vector spans the longer one.
    const [rows, cols] = a.length <= b.length ? [a, b] : [b, a];
    if (cheapest === c.dp) return { length: matched + dpLength(a, b), method: 'dp', cost: cheapest };
    if (cheapest === c.bit) return { length: matched + bitParallelLength(rows, cols, symbols), method: 'bit-parallel', cost: cheapest };
    return { length: matched + huntSzymanskiLength(rows, cols, symbols), method: 'hunt-szymanski', cost: cheapest };
  }
  // Long but alike texts: the edit distance D, not the length, decides Myers' cost (about D²/2
  // steps). D is at least n + m − 2·(the LCS bound), so a pair that cannot fit is not tried.
  const fewestEdits = a.length + b.length - 2 * Math.min(bound - inner.prefix - inner.suffix, a.length, b.length);
  if (((fewestEdits * fewestEdits) / 2) * COST.myersStep <= budget) {
    const viaEdits = myersLength(a, b, budget / COST.myersStep);
    if (viaEdits !== undefined) return { length: matched + viaEdits, method: 'myers', cost: budget };
  }
  return { cost: cheapest };
}

/** Exact LCS length, however long it takes (prefer `lcsWithinBudget` for untrusted input). */
export function lcsLength(x: readonly string[], y: readonly string[]): number {
  return (lcsExact(x, y) as LcsResult).length;
}

/**
 * The exact LCS of `x` and `y` when it fits `budget`; otherwise the exact LCS of prefixes of both
 * that fit it, in proportion to their lengths (a short text is kept whole when the other can make
 * room for it), with `xWords`/`yWords` saying how much was used and `wholeCost` what the whole
 * pair needed.
 */
export function lcsWithinBudget(x: readonly string[], y: readonly string[], budget = LCS_BUDGET): CappedLcsResult {
  const whole = lcsExact(x, y, budget);
  if ('length' in whole) return { length: whole.length, method: whole.method, xWords: x.length, yWords: y.length };
  // Prefixes in proportion to the lengths, so that a prediction that tracks its reference keeps
  // tracking it, with xWords · yWords cells ≈ what the bit-parallel method does within the budget.
  const cells = ((budget * 32) / COST.bitWord) * 0.95;
  let xWords = Math.max(1, Math.min(x.length, Math.floor(Math.sqrt((cells * x.length) / y.length))));
  const yWords = Math.max(1, Math.min(y.length, Math.floor(cells / xWords)));
  xWords = Math.max(1, Math.min(x.length, Math.floor(cells / yWords)));
  const part = lcsExact(x.slice(0, xWords), y.slice(0, yWords)) as LcsResult;
  return { length: part.length, method: part.method, xWords, yWords, wholeCost: whole.cost };
}
