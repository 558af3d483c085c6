import { fsum } from './python.ts';

/** Modified n-gram precision of one order, as an unreduced fraction (NLTK keeps them unreduced). */
export interface NgramPrecision {
  readonly order: number;
  /** Hypothesis n-grams found in the reference, each clipped to its count there. */
  readonly matches: number;
  /** Hypothesis n-grams, at least 1 (NLTK's guard against 0/0). */
  readonly total: number;
}

export interface BleuBreakdown {
  /** Sentence BLEU in [0, 1]. */
  readonly score: number;
  readonly precisions: readonly NgramPrecision[];
  /** Precisions after smoothing method 3, the values that enter the geometric mean. */
  readonly smoothed: readonly number[];
  readonly brevityPenalty: number;
  readonly hypothesisLength: number;
  readonly referenceLength: number;
}

/**
 * Each position's n-gram of every order 1..maxOrder as an integer id, shared by both texts: an
 * n-gram's id is interned from its (n−1)-gram's id and its last token's id, so equal n-grams get
 * equal ids in linear time, with no n-gram strings built.
 */
function ngramIds(reference: readonly string[], hypothesis: readonly string[], maxOrder: number): { ref: Int32Array[]; hyp: Int32Array[]; sizes: number[] } {
  const tokenIds = new Map<string, number>();
  const encode = (tokens: readonly string[]) =>
    Int32Array.from(tokens, (token) => {
      let id = tokenIds.get(token);
      if (id === undefined) tokenIds.set(token, (id = tokenIds.size));
      return id;
    });
  const ref = [encode(reference)];
  const hyp = [encode(hypothesis)];
  const sizes = [tokenIds.size];
  const vocabulary = tokenIds.size;
  for (let n = 2; n <= maxOrder; n++) {
    // (previous id) · vocabulary + token stays below 2^53 for any text that fits in memory.
    const ids = new Map<number, number>();
    const extend = (previous: Int32Array, tokens: Int32Array) => {
      const out = new Int32Array(Math.max(0, previous.length - 1));
      for (let i = 0; i < out.length; i++) {
        const key = previous[i]! * vocabulary + tokens[i + n - 1]!;
        let id = ids.get(key);
        if (id === undefined) ids.set(key, (id = ids.size));
        out[i] = id;
      }
      return out;
    };
    ref.push(extend(ref[n - 2]!, ref[0]!));
    hyp.push(extend(hyp[n - 2]!, hyp[0]!));
    sizes.push(ids.size);
  }
  return { ref, hyp, sizes };
}

function modifiedPrecision(reference: Int32Array, hypothesis: Int32Array, ids: number, n: number): NgramPrecision {
  const refCounts = new Int32Array(ids);
  for (const id of reference) refCounts[id]!++;
  // Clipping: each hypothesis n-gram matches while the reference still has a copy of it left.
  let matches = 0;
  for (const id of hypothesis) {
    if (refCounts[id]! > 0) {
      refCounts[id]!--;
      matches++;
    }
  }
  return { order: n, matches, total: Math.max(1, hypothesis.length) };
}

/** exp(1 − r/c) when the hypothesis is shorter than the reference, 1 when longer, 0 when empty. */
export function brevityPenalty(referenceLength: number, hypothesisLength: number): number {
  if (hypothesisLength > referenceLength) return 1;
  if (hypothesisLength === 0) return 0;
  return Math.exp(1 - referenceLength / hypothesisLength);
}

/**
 * Smoothing method 3 of Chen & Cherry (2014), NIST's geometric sequence: the k-th order whose
 * match count is zero gets precision 1 / (2^k · total) instead of 0.
 */
export function smoothMethod3(precisions: readonly NgramPrecision[]): number[] {
  let k = 1;
  return precisions.map((p) => {
    if (p.matches === 0) return 1 / (2 ** k++ * p.total);
    return p.matches / p.total;
  });
}

/**
 * Sentence BLEU of one hypothesis against one reference with uniform weights up to `maxOrder`
 * and smoothing method 3 — the published definition NLTK's `sentence_bleu(...,
 * smoothing_function=SmoothingFunction().method3)` implements: BP · exp(Σ wₙ · log pₙ), and 0 when
 * no unigram matches at all.
 * @default maxOrder 4
 */
export function sentenceBleu(reference: readonly string[], hypothesis: readonly string[], maxOrder = 4): BleuBreakdown {
  const ids = ngramIds(reference, hypothesis, maxOrder);
  const precisions = Array.from({ length: maxOrder }, (_, i) => modifiedPrecision(ids.ref[i]!, ids.hyp[i]!, ids.sizes[i]!, i + 1));
  const brevity = brevityPenalty(reference.length, hypothesis.length);
  const base = { precisions, brevityPenalty: brevity, hypothesisLength: hypothesis.length, referenceLength: reference.length };
  if (precisions[0]!.matches === 0) return { ...base, score: 0, smoothed: precisions.map(() => 0) };
  const smoothed = smoothMethod3(precisions);
  const weight = 1 / maxOrder;
  const score = brevity * Math.exp(fsum(smoothed.map((p) => weight * Math.log(p))));
  return { ...base, score, smoothed };
}

/** Characters (Unicode code points, as Python's `list(str)`): LLaMA-Factory's BLEU tokens. */
export function characterTokens(text: string): string[] {
  return Array.from(text);
}

const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}';
const WORD_TOKEN = new RegExp(
  `[${CJK}]|(?:(?![${CJK}])[\\p{L}\\p{M}\\p{N}_])+(?:['’](?:(?![${CJK}])[\\p{L}\\p{M}\\p{N}_])+)*|[^\\s]`,
  'gu',
);

/**
 * Word tokens for word-level BLEU on English: runs of letters/digits (with inner apostrophes),
 * each punctuation mark alone, each CJK character alone so mixed text still works.
 */
export function wordTokens(text: string, options: { readonly lowercase?: boolean } = {}): string[] {
  const source = options.lowercase ? text.toLowerCase() : text;
  return source.match(WORD_TOKEN) ?? [];
}
