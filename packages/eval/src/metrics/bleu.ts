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

function countNgrams(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    // A separator no token contains keeps ('ab','c') and ('a','bc') apart.
    const key = tokens.slice(i, i + n).join('\u0000');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function modifiedPrecision(reference: readonly string[], hypothesis: readonly string[], n: number): NgramPrecision {
  const hyp = countNgrams(hypothesis, n);
  const ref = countNgrams(reference, n);
  let matches = 0;
  let total = 0;
  for (const [ngram, count] of hyp) {
    matches += Math.min(count, ref.get(ngram) ?? 0);
    total += count;
  }
  return { order: n, matches, total: Math.max(1, total) };
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
  const precisions = Array.from({ length: maxOrder }, (_, i) => modifiedPrecision(reference, hypothesis, i + 1));
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
