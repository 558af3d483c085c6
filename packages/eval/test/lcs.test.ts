import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bitParallelLength, dpLength, huntSzymanskiLength, lcsExact, lcsWithinBudget, myersLength } from '../src/metrics/lcs.ts';
import { computeSimilarity, LCS_BUDGET, lcsLength, rougeL, rougeScores, sentenceBleu } from '../src/index.ts';

// The textbook O(n·m) table: the oracle every faster method must agree with.
function textbookLcs(x: readonly string[], y: readonly string[]): number {
  let previous = new Array<number>(y.length + 1).fill(0);
  let current = new Array<number>(y.length + 1).fill(0);
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) current[j] = x[i - 1] === y[j - 1] ? previous[j - 1]! + 1 : Math.max(previous[j]!, current[j - 1]!);
    [previous, current] = [current, previous];
  }
  return previous[y.length]!;
}

// NLTK's clipped n-gram counts with string keys: the oracle for the integer-id BLEU counts.
function textbookPrecisions(reference: readonly string[], hypothesis: readonly string[]): [number, number][] {
  const counts = (tokens: readonly string[], n: number) => {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = JSON.stringify(tokens.slice(i, i + n));
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    return m;
  };
  return [1, 2, 3, 4].map((n) => {
    const ref = counts(reference, n);
    let matches = 0;
    let total = 0;
    for (const [key, count] of counts(hypothesis, n)) {
      matches += Math.min(count, ref.get(key) ?? 0);
      total += count;
    }
    return [matches, Math.max(1, total)];
  });
}

let seed = 99;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
};
const words = (n: number, vocabulary: number) => Array.from({ length: n }, () => `w${Math.floor(rand() * vocabulary)}`);
const encode = (x: readonly string[], y: readonly string[]) => {
  const ids = new Map<string, number>();
  const of = (s: readonly string[]) => Int32Array.from(s, (w) => (ids.has(w) ? ids.get(w)! : (ids.set(w, ids.size), ids.size - 1)));
  const a = of(x);
  const b = of(y);
  return { a, b, symbols: ids.size };
};
/** `x` with about `rate` of its words dropped, replaced or followed by an extra one. */
const edit = (x: readonly string[], rate: number, vocabulary: number) =>
  x.flatMap((w) => {
    const r = rand();
    if (r < rate / 3) return [];
    if (r < (2 * rate) / 3) return [`w${Math.floor(rand() * vocabulary)}`];
    return r < rate ? [w, `w${Math.floor(rand() * vocabulary)}`] : [w];
  });

const sequences = fc.tuple(
  fc.integer({ min: 1, max: 8 }).chain((vocabulary) =>
    fc.tuple(fc.array(fc.integer({ min: 0, max: vocabulary - 1 }), { maxLength: 90 }), fc.array(fc.integer({ min: 0, max: vocabulary + 1 }), { maxLength: 90 })),
  ),
  fc.boolean(),
);

test('every LCS method gives the textbook length (property, small alphabets, with one-sided words)', () => {
  fc.assert(
    fc.property(sequences, ([[xs, ys], related]) => {
      const x = xs.map((v) => `w${v}`);
      // Half the cases: y is x edited, so long common runs, prefixes and suffixes occur.
      const y = related ? edit(x, 0.2, 10) : ys.map((v) => `w${v}`);
      const want = textbookLcs(x, y);
      const { a, b, symbols } = encode(x, y);
      assert.equal(dpLength(a, b), want);
      assert.equal(huntSzymanskiLength(a, b, symbols), want);
      assert.equal(huntSzymanskiLength(b, a, symbols), want);
      assert.equal(bitParallelLength(a, b, symbols), want);
      assert.equal(bitParallelLength(b, a, symbols), want);
      assert.equal(myersLength(a, b, Number.POSITIVE_INFINITY), want);
      assert.equal(lcsLength(x, y), want);
      assert.deepEqual(lcsWithinBudget(x, y), { length: want, method: lcsWithinBudget(x, y).method, xWords: x.length, yWords: y.length });
    }),
    { numRuns: 3000, seed: 20240611 },
  );
});

test('each method is chosen where it is cheapest, and all agree on longer texts', () => {
  // Bit vectors past one 32-bit word, carries across words, frequent and rare words.
  const x = words(700, 12);
  const y = edit(x, 0.3, 15);
  const want = textbookLcs(x, y);
  const { a, b, symbols } = encode(x, y);
  assert.equal(bitParallelLength(a, b, symbols), want);
  assert.equal(huntSzymanskiLength(a, b, symbols), want);
  assert.equal(myersLength(a, b, Number.POSITIVE_INFINITY), want);
  // Few matching pairs (large vocabulary): Hunt–Szymanski.
  const rare = lcsExact(words(3000, 5000), words(3000, 5000));
  assert.equal('method' in rare && rare.method, 'hunt-szymanski');
  // Many matching pairs: the bit-parallel rows.
  const dense = lcsExact(words(3000, 4), words(3000, 4));
  assert.equal('method' in dense && dense.method, 'bit-parallel');
  // Alike texts over a budget too small for the others: Myers, still exact.
  const long = words(5000, 20);
  const close = edit(long, 0.002, 20);
  const viaEdits = lcsExact(long, close, 200_000);
  assert.equal('method' in viaEdits && viaEdits.method, 'myers');
  assert.equal('length' in viaEdits && viaEdits.length, textbookLcs(long, close));
  // Identical or prefix/suffix-only differences never reach a method.
  assert.deepEqual(lcsExact(long, long), { length: 5000, method: 'trivial', cost: 0 });
  assert.deepEqual(lcsExact(['x', ...long, 'y'], long), { length: 5000, method: 'trivial', cost: 0 });
});

test('a pair over the budget is scored on proportional prefixes, and says so', () => {
  const reference = words(4000, 6);
  const hypothesis = words(3000, 6);
  const capped = lcsWithinBudget(reference, hypothesis, 200_000);
  assert.ok(capped.wholeCost! > 200_000);
  assert.ok(capped.xWords < 4000 && capped.yWords < 3000);
  // Prefixes keep the ratio of the lengths, and their LCS is exact.
  assert.ok(Math.abs(capped.xWords / capped.yWords - 4 / 3) < 0.01, `${capped.xWords}/${capped.yWords}`);
  assert.equal(capped.length, textbookLcs(reference.slice(0, capped.xWords), hypothesis.slice(0, capped.yWords)));

  const score = rougeL(hypothesis, reference, 200_000);
  assert.equal(score.r, capped.length / capped.xWords);
  assert.equal(score.p, capped.length / capped.yWords);
  assert.match(score.note!, new RegExp(`^ROUGE-L over the first ${capped.yWords.toLocaleString('en-US')} of 3,000 prediction words and the first ${capped.xWords.toLocaleString('en-US')} of 4,000 reference words: .* over the limit of 2\\.0e\\+5 \\(LCS_BUDGET\\)$`));
  // Under the real budget the same pair is exact, with no note.
  assert.equal(rougeL(hypothesis, reference).note, undefined);
  assert.ok(LCS_BUDGET >= 100_000_000);
});

test('a 1 MB prediction against a 1 MB reference is scored in seconds, with a note on ROUGE-L', () => {
  // ~200,000 words each (as jieba makes of 1 MB of Chinese): the textbook table has 4·10¹⁰ cells.
  const vocabulary = ['市盈率', '是', '股价', '除以', '每股', '收益', '，', '。', '的', '风险', '利率', '贷款', '还款', '每月', '本金', '利息'];
  const text = (n: number) => Array.from({ length: n }, () => vocabulary[Math.floor(rand() * vocabulary.length)]).join('');
  const label = text(200_000);
  const predict = text(200_000);
  assert.ok(Buffer.byteLength(label) > 1_000_000);
  const started = performance.now();
  const result = computeSimilarity([{ predict: '市盈率是股价除以每股收益。', label: '市盈率是股价除以每股收益。' }, { predict, label }]);
  const seconds = (performance.now() - started) / 1000;
  // About 2 s on an idle laptop; the quadratic table took 524 s.
  assert.ok(seconds < 60, `took ${seconds.toFixed(1)} s`);
  const scores = result.samples[1]!;
  assert.equal(scores.notes?.length, 1);
  assert.match(scores.notes![0]!, /^ROUGE-L over the first [\d,]+ of [\d,]+ prediction words/);
  for (const key of ['bleu-4', 'rouge-1', 'rouge-2', 'rouge-l'] as const) assert.ok(scores[key] > 0 && scores[key] <= 100, key);
  assert.deepEqual(result.notes, [`sample 2: ${scores.notes![0]}`]);
  // Ordinary samples carry no notes key at all (their scores are exact).
  assert.equal('notes' in result.samples[0]!, false);
});

test('BLEU n-gram counts equal the string-keyed counts, long texts included', () => {
  for (const [n, vocabulary] of [[0, 3], [1, 3], [3, 2], [50, 3], [400, 5], [5000, 30]] as const) {
    const reference = words(n, vocabulary);
    const hypothesis = rand() < 0.5 ? edit(reference, 0.3, vocabulary) : words(Math.floor(n * 0.8), vocabulary);
    const b = sentenceBleu(reference, hypothesis);
    assert.deepEqual(b.precisions.map((p) => [p.matches, p.total]), textbookPrecisions(reference, hypothesis), `n=${n}`);
  }
  // A separator inside tokens cannot merge two different n-grams.
  assert.deepEqual(sentenceBleu(['a\u0000b', 'c'], ['a', 'b\u0000c']).precisions.map((p) => p.matches), [0, 0, 0, 0]);
  // Long-text ROUGE-1/2 stay exact (they are linear): only ROUGE-L carries a note.
  const long = words(60_000, 8).join(' ');
  assert.equal(rougeScores(long, long)['rouge-l'].f, rougeScores('a b', 'a b')['rouge-l'].f);
});
