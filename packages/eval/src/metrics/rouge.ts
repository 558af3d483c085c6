import { LCS_BUDGET, lcsWithinBudget } from './lcs.ts';
import { pyRstrip, pySplit } from './python.ts';

export { LCS_BUDGET, lcsLength, lcsWithinBudget } from './lcs.ts';

/** F-score, precision and recall of one ROUGE variant, in [0, 1]. */
export interface RougeScore {
  readonly f: number;
  readonly p: number;
  readonly r: number;
}

export interface RougeScores {
  readonly 'rouge-1': RougeScore;
  readonly 'rouge-2': RougeScore;
  readonly 'rouge-l': RougeLScore;
}

/**
 * Sentence splitting of the `rouge_chinese` package LLaMA-Factory scores with: a break after
 * 。！？? (unless a closing quote follows), after "......" and "……", and after a closing quote
 * that follows sentence-final punctuation; plus every newline already in the text.
 */
export function cutSentences(text: string): string[] {
  const split = text
    .replace(/([。！？?])([^”’])/gu, '$1\n$2')
    .replace(/(\.{6})([^”’])/gu, '$1\n$2')
    .replace(/(…{2})([^”’])/gu, '$1\n$2')
    .replace(/([。！？?][”’])([^，。！？?])/gu, '$1\n$2');
  return pyRstrip(split).split('\n');
}

/**
 * The word sequence `rouge_chinese` scores: sentences (empty ones dropped before whitespace is
 * normalized, so a whitespace-only line survives as one empty word — kept for exact parity),
 * each re-joined by single spaces, then all words in order.
 */
export function rougeWords(text: string): string[] {
  return cutSentences(text)
    .filter((sentence) => sentence.length > 0)
    .map((sentence) => pySplit(sentence).join(' '))
    .flatMap((sentence) => sentence.split(' '));
}

/** F1 as `rouge_chinese` computes it, with its 1e-8 in the denominator. */
function fScore(p: number, r: number): number {
  return 2 * ((p * r) / (p + r + 1e-8));
}

function ngramSet(words: readonly string[], n: number): Set<string> {
  const set = new Set<string>();
  for (let i = 0; i + n <= words.length; i++) set.add(JSON.stringify(words.slice(i, i + n)));
  return set;
}

/**
 * ROUGE-N over *distinct* n-grams (the package's default `exclusive=True`: a repeated n-gram
 * counts once on each side).
 */
export function rougeN(hypothesis: readonly string[], reference: readonly string[], n: number): RougeScore {
  const hyp = ngramSet(hypothesis, n);
  const ref = ngramSet(reference, n);
  let overlap = 0;
  for (const ngram of hyp) if (ref.has(ngram)) overlap++;
  const p = hyp.size === 0 ? 0 : overlap / hyp.size;
  const r = ref.size === 0 ? 0 : overlap / ref.size;
  return { f: fScore(p, r), p, r };
}

/** ROUGE-L as `rouge_chinese` computes it, plus a note when the pair was too long to score whole. */
export interface RougeLScore extends RougeScore {
  /**
   * Set when the exact LCS of the whole pair would exceed `LCS_BUDGET`: P, R and F are then those
   * of the prefixes named here (ROUGE-1/2 still cover the whole texts).
   */
  readonly note?: string;
}

const count = (n: number) => n.toLocaleString('en-US');

/**
 * ROUGE-L: LCS of the whole word sequences; R = LCS/|reference|, P = LCS/|hypothesis|. Exact
 * whenever the LCS fits `budget` (every ordinary answer); beyond it, scored over the longest
 * prefixes that fit, with a `note` saying so.
 */
export function rougeL(hypothesis: readonly string[], reference: readonly string[], budget = LCS_BUDGET): RougeLScore {
  const lcs = lcsWithinBudget(reference, hypothesis, budget);
  const r = lcs.length / lcs.xWords;
  const p = lcs.length / lcs.yWords;
  const score = { f: fScore(p, r), p, r };
  if (lcs.wholeCost === undefined) return score;
  const note =
    `ROUGE-L over the first ${count(lcs.yWords)} of ${count(hypothesis.length)} prediction words and the first ` +
    `${count(lcs.xWords)} of ${count(reference.length)} reference words: the exact longest common subsequence of the ` +
    `whole texts would take about ${lcs.wholeCost.toExponential(1)} steps, over the limit of ${budget.toExponential(1)} (LCS_BUDGET)`;
  return { ...score, note };
}

/**
 * `Rouge().get_scores(hyp, ref)[0]` of `rouge_chinese` for two space-joined token strings.
 * Both must contain a non-space character (the caller scores empty text as 0, as LLaMA-Factory does).
 */
export function rougeScores(hypothesisText: string, referenceText: string): RougeScores {
  const hyp = rougeWords(hypothesisText);
  const ref = rougeWords(referenceText);
  return { 'rouge-1': rougeN(hyp, ref, 1), 'rouge-2': rougeN(hyp, ref, 2), 'rouge-l': rougeL(hyp, ref) };
}
