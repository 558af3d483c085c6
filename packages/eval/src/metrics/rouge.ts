import { pyRstrip, pySplit } from './python.ts';

/** F-score, precision and recall of one ROUGE variant, in [0, 1]. */
export interface RougeScore {
  readonly f: number;
  readonly p: number;
  readonly r: number;
}

export interface RougeScores {
  readonly 'rouge-1': RougeScore;
  readonly 'rouge-2': RougeScore;
  readonly 'rouge-l': RougeScore;
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

/** Length of the longest common subsequence (two-row dynamic programme). */
export function lcsLength(x: readonly string[], y: readonly string[]): number {
  let previous = new Array<number>(y.length + 1).fill(0);
  let current = new Array<number>(y.length + 1).fill(0);
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      current[j] = x[i - 1] === y[j - 1] ? previous[j - 1]! + 1 : Math.max(previous[j]!, current[j - 1]!);
    }
    [previous, current] = [current, previous];
  }
  return previous[y.length]!;
}

/** ROUGE-L: LCS of the whole word sequences; R = LCS/|reference|, P = LCS/|hypothesis|. */
export function rougeL(hypothesis: readonly string[], reference: readonly string[]): RougeScore {
  const lcs = lcsLength(reference, hypothesis);
  const r = lcs / reference.length;
  const p = lcs / hypothesis.length;
  return { f: fScore(p, r), p, r };
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
