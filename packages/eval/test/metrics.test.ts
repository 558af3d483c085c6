import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  brevityPenalty,
  characterTokens,
  computeSimilarity,
  cutSentences,
  fsum,
  jiebaCut,
  npMean,
  pyRound,
  rougeScores,
  rougeWords,
  scoreSample,
  sentenceBleu,
  wordTokens,
} from '../src/index.ts';

// Every expected value below is worked out by hand from the published formulas:
//   BLEU-4 = BP · exp(¼ Σₙ log pₙ), pₙ = clipped n-gram matches / hypothesis n-grams,
//   BP = 1 if c > r else exp(1 − r/c); smoothing method 3 replaces the k-th zero pₙ by 1/(2^k · total);
//   ROUGE-N over distinct n-grams, ROUGE-L = LCS; F = 2PR / (P + R + 1e-8) (rouge_chinese's epsilon);
//   each score ×100 and rounded to 4 decimals (Python round, ties to even).

test('BLEU-4, Chinese characters, all n-grams match, short hypothesis', () => {
  // hyp 我是小聚 (4 chars), ref 我是小聚助手 (6 chars):
  // p1 = 4/4, p2 = 3/3, p3 = 2/2, p4 = 1/1; BP = exp(1 − 6/4) = exp(−0.5) = 0.6065306597
  const b = sentenceBleu(characterTokens('我是小聚助手'), characterTokens('我是小聚'));
  assert.deepEqual(
    b.precisions.map((p) => [p.matches, p.total]),
    [[4, 4], [3, 3], [2, 2], [1, 1]],
  );
  assert.equal(b.brevityPenalty, Math.exp(-0.5));
  assert.equal(pyRound(b.score * 100, 4), 60.6531);
});

test('BLEU-4 smoothing method 3 on zero 3- and 4-gram matches', () => {
  // hyp a b c d, ref a b x d: p1 = 3/4 (a,b,d), p2 = 1/3 (ab), p3 = 0/2 → 1/(2¹·2) = 1/4,
  // p4 = 0/1 → 1/(2²·1) = 1/4; BP = exp(1 − 4/4) = 1
  // BLEU = (3/4 · 1/3 · 1/4 · 1/4)^¼ = (1/64)^¼ = 1/(2√2) = 0.35355339
  const b = sentenceBleu(characterTokens('abxd'), characterTokens('abcd'));
  assert.deepEqual(b.smoothed, [3 / 4, 1 / 3, 1 / 4, 1 / 4]);
  assert.equal(pyRound(b.score * 100, 4), 35.3553);
});

test('BLEU-4 when the hypothesis is shorter than the n-gram order', () => {
  // hyp a b, ref a b c: p1 = 2/2, p2 = 1/1, p3: no trigrams → 0/max(1,0) = 0/1 → 1/2, p4 → 1/4;
  // BP = exp(1 − 3/2) = exp(−0.5); BLEU = exp(−0.5) · (1/8)^¼ = exp(−0.5) · 2^(−3/4) = 0.36064529
  const b = sentenceBleu(characterTokens('abc'), characterTokens('ab'));
  assert.deepEqual(b.smoothed, [1, 1, 1 / 2, 1 / 4]);
  assert.equal(pyRound(b.score * 100, 4), 36.0645);
});

test('BLEU-4 word level on English, and why character level overrates it', () => {
  // hyp: the cat sat on the mat / ref: the cat is on the mat (6 words each)
  // p1 = 5/6 (the×2, cat, on, mat), p2 = 3/5 (the cat, on the, the mat), p3 = 1/4 (on the mat),
  // p4 = 0/3 → 1/(2·3) = 1/6; BP = 1; BLEU = (5/6 · 3/5 · 1/4 · 1/6)^¼ = (1/48)^¼ = 0.37991784
  const hyp = wordTokens('the cat sat on the mat');
  const ref = wordTokens('the cat is on the mat');
  assert.deepEqual(hyp, ['the', 'cat', 'sat', 'on', 'the', 'mat']);
  const word = sentenceBleu(ref, hyp);
  assert.equal(pyRound(word.score * 100, 4), 37.9918);
  const char = sentenceBleu(characterTokens('the cat is on the mat'), characterTokens('the cat sat on the mat'));
  assert.ok(char.score > 2 * word.score, `character BLEU ${char.score} should be far above word BLEU ${word.score}`);
});

test('BLEU edge cases: zero overlap, identical, empty, brevity penalty', () => {
  // No unigram in common: NLTK returns 0 before smoothing.
  assert.equal(sentenceBleu(characterTokens('xyz'), characterTokens('abc')).score, 0);
  // Identical: every pₙ = 1 and BP = exp(0) = 1.
  assert.equal(sentenceBleu(characterTokens('你好世界'), characterTokens('你好世界')).score, 1);
  assert.equal(sentenceBleu(characterTokens('abc'), []).score, 0);
  assert.equal(sentenceBleu([], characterTokens('abc')).score, 0);
  assert.equal(brevityPenalty(4, 5), 1);
  assert.equal(brevityPenalty(4, 0), 0);
  // Characters are code points, as Python's list(str): an emoji is one token, not two UTF-16 units.
  assert.deepEqual(characterTokens('a😀'), ['a', '😀']);
});

test('ROUGE over words: a prefix of the reference', () => {
  // hyp [我 是 小聚], ref [我 是 小聚 助手]
  // R1: P = 3/3, R = 3/4 → F = 2·(3/4)/(1 + 3/4 + 1e-8) = 0.8571428522 → 85.7143
  // R2: hyp {我是, 是小聚}, ref {我是, 是小聚, 小聚助手}: P = 1, R = 2/3 → F = 0.7999999952 → 80.0
  // RL: LCS = 3 → P = 1, R = 3/4 → 85.7143
  const s = rougeScores('我 是 小聚', '我 是 小聚 助手');
  assert.deepEqual(
    [s['rouge-1'].f, s['rouge-2'].f, s['rouge-l'].f].map((f) => pyRound(f * 100, 4)),
    [85.7143, 80, 85.7143],
  );
  assert.equal(s['rouge-1'].r, 0.75);
});

test('ROUGE-N counts distinct n-grams (rouge_chinese exclusive mode), ROUGE-L does not', () => {
  // hyp [好 的 好 的], ref [好 的]
  // R1: distinct {好, 的} both sides → P = R = 1 → F = 2/(2 + 1e-8) = 0.999999995 → 100.0
  // R2: hyp {好的, 的好}, ref {好的} → P = 1/2, R = 1 → F = 1/(1.5 + 1e-8) = 0.6666666622 → 66.6667
  // RL: LCS = 2, P = 2/4, R = 2/2 → 66.6667
  const s = rougeScores('好 的 好 的', '好 的');
  assert.equal(s['rouge-1'].p, 1);
  assert.deepEqual(
    [s['rouge-1'].f, s['rouge-2'].f, s['rouge-l'].f].map((f) => pyRound(f * 100, 4)),
    [100, 66.6667, 66.6667],
  );
});

test('ROUGE keeps rouge_chinese sentence splitting, including its empty-word quirk', () => {
  assert.deepEqual(cutSentences('你好。世界！好吗？是的'), ['你好。', '世界！', '好吗？', '是的']);
  assert.deepEqual(cutSentences('他说：“好。”然后走了'), ['他说：“好。”', '然后走了']);
  // A whitespace-only line survives as one empty word: hyp words [好, '', 的].
  assert.deepEqual(rougeWords('好 \n \n 的'), ['好', '', '的']);
  // R1: hyp {好, '', 的} (3), ref {好, 的} (2) → P = 2/3, R = 1 → F = (4/3)/(5/3 + 1e-8) → 80.0
  // R2: hyp {好·'', ''·的}, ref {好·的} → no overlap → 0;  RL: LCS = 2 → P = 2/3, R = 1 → 80.0
  const s = rougeScores('好 \n \n 的', '好 的');
  assert.deepEqual(
    [s['rouge-1'].f, s['rouge-2'].f, s['rouge-l'].f].map((f) => pyRound(f * 100, 4)),
    [80, 0, 80],
  );
});

test('jieba segmentation matches Python jieba on its documented examples', () => {
  assert.deepEqual(jiebaCut('我来到北京清华大学'), ['我', '来到', '北京', '清华大学']);
  assert.deepEqual(jiebaCut('他来到了网易杭研大厦'), ['他', '来到', '了', '网易', '杭研', '大厦']);
  assert.deepEqual(jiebaCut(''), []);
});

test('one Chinese sample end to end, as LLaMA-Factory scores it', () => {
  const predict = '我是小聚，由Aron开发的AI助手。';
  const label = '我是小聚，一个由Aron开发的AI助手。';
  assert.deepEqual(jiebaCut(predict), ['我', '是', '小聚', '，', '由', 'Aron', '开发', '的', 'AI', '助手', '。']);
  assert.deepEqual(jiebaCut(label), ['我', '是', '小聚', '，', '一个', '由', 'Aron', '开发', '的', 'AI', '助手', '。']);
  // Words: hyp 11 distinct, ref 12 distinct (adds 一个); one sentence each (。 ends the text).
  // R1: P = 11/11, R = 11/12 → F = (22/12)/(23/12 + 1e-8) = 0.9565217349 → 95.6522
  // R2: hyp 10 bigrams, ref 11; all but "，由" shared → P = 9/10, R = 9/11 → F = 6/7 − ε = 0.8571428521 → 85.7143
  // RL: hyp is a subsequence of ref → LCS = 11 → same as R1 → 95.6522
  // BLEU (characters): hyp 18, ref 20 chars; p1 = 18/18; p2 = 16/17 (no "，由"); p3 = 14/16 (no "聚，由", "，由A");
  // p4 = 12/15 (no "小聚，由", "聚，由A", "，由Ar"); BP = exp(1 − 20/18) = exp(−1/9)
  // BLEU = exp(−1/9) · (16/17 · 14/16 · 12/15)^¼ = exp(−1/9) · (56/85)^¼ = 0.8061898627 → 80.619
  const b = sentenceBleu(characterTokens(label), characterTokens(predict));
  assert.deepEqual(
    b.precisions.map((p) => [p.matches, p.total]),
    [[18, 18], [16, 17], [14, 16], [12, 15]],
  );
  assert.deepEqual(scoreSample({ predict, label }), { 'rouge-1': 95.6522, 'rouge-2': 85.7143, 'rouge-l': 95.6522, 'bleu-4': 80.619 });
});

test('empty and whitespace-only predictions: ROUGE 0, BLEU still over raw characters', () => {
  assert.deepEqual(scoreSample({ predict: '', label: '你好' }), { 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0, 'bleu-4': 0 });
  assert.deepEqual(scoreSample({ predict: '你好', label: '' }), { 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0, 'bleu-4': 0 });
  // predict " " vs label "a b": jieba gives only a space → no words → ROUGE 0.
  // BLEU over characters: p1 = 1/1 (the space); p2..p4 have no n-grams → 1/2, 1/4, 1/8;
  // BP = exp(1 − 3/1) = exp(−2); BLEU = exp(−2) · (1/64)^¼ = exp(−2)/2^1.5 = 0.0478482 → 4.7848
  assert.deepEqual(scoreSample({ predict: ' ', label: 'a b' }), { 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0, 'bleu-4': 4.7848 });
});

test('zero overlap and identical strings', () => {
  assert.deepEqual(scoreSample({ predict: '今天天气很好', label: 'The market fell.' }), { 'rouge-1': 0, 'rouge-2': 0, 'rouge-l': 0, 'bleu-4': 0 });
  // Identical: every P = R = 1 → F = 2/(2 + 1e-8) → 99.9999995 → 100.0; BLEU = 1 → 100.0
  assert.deepEqual(scoreSample({ predict: '市盈率是股价除以每股收益。', label: '市盈率是股价除以每股收益。' }), {
    'rouge-1': 100,
    'rouge-2': 100,
    'rouge-l': 100,
    'bleu-4': 100,
  });
});

test('English sample: word-level BLEU on request', () => {
  const s = scoreSample({ predict: 'the cat sat on the mat', label: 'the cat is on the mat' }, { wordBleu: true });
  assert.equal(s['bleu-4-word'], 37.9918);
  // jieba keeps English words and yields spaces as tokens; words after whitespace normalisation:
  // hyp [the cat sat on the mat], ref [the cat is on the mat]
  // R1 distinct: hyp {the, cat, sat, on, mat} 5, ref {the, cat, is, on, mat} 5, overlap 4 → P = R = 4/5 → F = 0.799999995 → 80.0
  // R2: hyp {the cat, cat sat, sat on, on the, the mat}, ref {the cat, cat is, is on, on the, the mat}: 3/5 each → 60.0
  // RL: LCS(the cat on the mat) = 5, P = R = 5/6 → F = 0.8333333283 → 83.3333
  assert.deepEqual([s['rouge-1'], s['rouge-2'], s['rouge-l']], [80, 60, 83.3333]);
});

test('averages are NumPy means of the rounded per-sample scores', () => {
  const result = computeSimilarity([
    { predict: '我是小聚，由Aron开发的AI助手。', label: '我是小聚，一个由Aron开发的AI助手。' },
    { predict: '市盈率是股价除以每股收益。', label: '市盈率是股价除以每股收益。' },
  ]);
  // (80.619 + 100)/2, (95.6522 + 100)/2, (85.7143 + 100)/2, (95.6522 + 100)/2
  assert.deepEqual(result.scores, {
    'predict_bleu-4': (80.619 + 100) / 2,
    'predict_rouge-1': (95.6522 + 100) / 2,
    'predict_rouge-2': (85.7143 + 100) / 2,
    'predict_rouge-l': (95.6522 + 100) / 2,
  });
  assert.equal(result.samples.length, 2);
  assert.ok(Number.isNaN(computeSimilarity([]).scores['predict_bleu-4']));
});

test('Python/NumPy numerics', () => {
  // round() is correctly rounded from the binary value, ties to even.
  assert.equal(pyRound(0.03125, 4), 0.0312); // exact tie → even
  assert.equal(pyRound(0.09375, 4), 0.0938); // exact tie → even (7 is odd, so up)
  assert.equal(pyRound(2.675, 2), 2.67); // 2.675 is 2.67499999… in binary
  assert.equal(pyRound(-1.5, 0), -2);
  assert.equal(pyRound(99.9999995, 4), 100);
  assert.equal(fsum([0.1, 0.2, 0.3]), 0.6); // plain summation gives 0.6000000000000001
  assert.equal(fsum([1e100, 1, -1e100]), 1);
  // Pairwise summation: 9 values use 8 accumulators then the rest, unlike a left-to-right sum.
  const values = [1e16, 1, 1, 1, 1, 1, 1, 1, 1];
  assert.equal(npMean(values), (1e16 + 1 + (1 + 1) + (1 + 1 + (1 + 1)) + 1) / 9);
  assert.equal(npMean([1, 2, 3, 4]), 2.5);
});
