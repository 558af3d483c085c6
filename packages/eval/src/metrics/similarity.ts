import { characterTokens, sentenceBleu, wordTokens } from './bleu.ts';
import { npMean, pyRound, pySplit } from './python.ts';
import { rougeScores } from './rouge.ts';
import { jiebaCut } from './segment.ts';

/** One prediction and its reference answer. */
export interface PredictionPair {
  readonly predict: string;
  readonly label: string;
}

/** Scores of one sample, ×100 and rounded to 4 decimals as LLaMA-Factory rounds them. */
export interface SampleScores {
  readonly 'bleu-4': number;
  readonly 'rouge-1': number;
  readonly 'rouge-2': number;
  readonly 'rouge-l': number;
  /** Word-level BLEU-4, when asked for. */
  readonly 'bleu-4-word'?: number;
  /** Present only when a score is not exact: a pair too long for an exact ROUGE-L (see `LCS_BUDGET`). */
  readonly notes?: readonly string[];
}

type ScoreKey = Exclude<keyof SampleScores, 'notes'>;

/** Averages under the keys LLaMA-Factory writes into `predict_results.json`. */
export type SimilarityScores = {
  readonly 'predict_bleu-4': number;
  readonly 'predict_rouge-1': number;
  readonly 'predict_rouge-2': number;
  readonly 'predict_rouge-l': number;
  /** Word-level BLEU-4 (not a LLaMA-Factory key): character BLEU overrates English. */
  readonly 'predict_bleu-4-word'?: number;
};

export interface SimilarityOptions {
  /** Also compute word-level BLEU-4 (for English answers). @default false */
  readonly wordBleu?: boolean;
  /** Lower-case before word-level BLEU. @default false */
  readonly lowercase?: boolean;
}

const percent = (x: number) => pyRound(x * 100, 4);

/**
 * One sample, computed as LLaMA-Factory's `ComputeSimilarity` does: ROUGE-1/2/L F-scores of
 * `rouge_chinese` over jieba words joined by spaces (0 when either side has no words), and
 * character-level sentence BLEU-4 with smoothing method 3.
 */
export function scoreSample(pair: PredictionPair, options: SimilarityOptions = {}): SampleScores {
  const hypothesis = jiebaCut(pair.predict);
  const reference = jiebaCut(pair.label);
  const hypText = hypothesis.join(' ');
  const refText = reference.join(' ');
  const rouge =
    pySplit(hypText).length === 0 || pySplit(refText).length === 0
      ? { 'rouge-1': { f: 0 }, 'rouge-2': { f: 0 }, 'rouge-l': { f: 0 } }
      : rougeScores(hypText, refText);
  const bleu = sentenceBleu(characterTokens(pair.label), characterTokens(pair.predict)).score;
  const note = 'note' in rouge['rouge-l'] ? rouge['rouge-l'].note : undefined;
  const scores: SampleScores = {
    'rouge-1': percent(rouge['rouge-1'].f),
    'rouge-2': percent(rouge['rouge-2'].f),
    'rouge-l': percent(rouge['rouge-l'].f),
    'bleu-4': percent(bleu),
  };
  const notes = note ? { notes: [note] } : {};
  if (!options.wordBleu) return { ...scores, ...notes };
  const lower = { lowercase: options.lowercase ?? false };
  const word = sentenceBleu(wordTokens(pair.label, lower), wordTokens(pair.predict, lower)).score;
  return { ...scores, 'bleu-4-word': percent(word), ...notes };
}

export interface SimilarityResult {
  /** NaN when there are no pairs, as NumPy's mean of nothing is (and LLaMA-Factory reports). */
  readonly scores: SimilarityScores;
  readonly samples: readonly SampleScores[];
  /** Samples whose scores are not exact, with why: `sample 3: ROUGE-L over the first …`. */
  readonly notes: readonly string[];
}

/** Per-sample scores and their means (NumPy's summation order), keyed like `predict_results.json`. */
export function computeSimilarity(pairs: Iterable<PredictionPair>, options: SimilarityOptions = {}): SimilarityResult {
  const samples = [...pairs].map((pair) => scoreSample(pair, options));
  const mean = (key: ScoreKey) => npMean(samples.map((s) => s[key] ?? 0));
  const scores: SimilarityScores = {
    'predict_bleu-4': mean('bleu-4'),
    'predict_rouge-1': mean('rouge-1'),
    'predict_rouge-2': mean('rouge-2'),
    'predict_rouge-l': mean('rouge-l'),
    ...(options.wordBleu ? { 'predict_bleu-4-word': mean('bleu-4-word') } : {}),
  };
  const notes = samples.flatMap((s, i) => (s.notes ?? []).map((note) => `sample ${i + 1}: ${note}`));
  return { scores, samples, notes };
}
