#!/usr/bin/env node
// Benchmark of the LLaMA-Factory-compatible scorer (BLEU-4, ROUGE-1/2/L): 10,000 ordinary
// prediction/reference pairs, then one long reference (1 MB of UTF-8) against three 1 MB
// predictions — two near copies (what a good model produces) and an unrelated text with the same
// vocabulary (the worst case for the longest common subsequence). Each long pair is timed stage by
// stage; a pair too long for an exact ROUGE-L within LCS_BUDGET prints the note its score carries.
//
// usage: npm run bench:eval -- [--pairs N] [--mb X] [--no-long]
// (run through `node --import tsx`, which the npm script does, because the scorer is TypeScript)
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus } from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const evalPkg = await import(pathToFileURL(join(root, 'packages/eval/src/index.ts')).href);
const { computeSimilarity, scoreSample, jiebaCut, sentenceBleu, characterTokens, rougeScores } = evalPkg;

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
};
const pairCount = Number(arg('--pairs', '10000'));
const megabytes = Number(arg('--mb', '1'));
const long = !process.argv.includes('--no-long');

// Deterministic text: mixed Chinese and English finance answers with numbers, so jieba, the
// sentence splitter and the n-gram tables all see realistic vocabularies and repetition.
let seed = 20240611;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
};
const pick = (list) => list[Math.floor(rand() * list.length)];
const zhTopics = ['等额本息', '信用卡免息期', '存款保险', '基金定投', '反洗钱', '提前还款', '理财产品风险等级', '征信查询', '市盈率', '债券久期', '汇率风险', '保证金交易'];
const zhVerbs = ['是指', '通常意味着', '可以理解为', '取决于', '会影响', '需要关注'];
const zhTails = ['每月还款金额固定', '利息按日计算', '本金逐月减少', '收益并不保证', '风险与期限相关', '应当核对合同条款', '银行会上报征信', '市场波动会放大损失'];
const enTopics = ['loan repayment', 'credit card interest', 'deposit insurance', 'bond duration', 'FX spreads', 'KYC checks', 'chargebacks', 'mortgage refinancing'];
const enTails = ['depends on the contract terms', 'is computed daily', 'changes with the market rate', 'must be disclosed to the customer', 'is capped by regulation', 'affects the monthly payment'];

function sentence() {
  if (rand() < 0.6) return `${pick(zhTopics)}${pick(zhVerbs)}${pick(zhTails)}，例如金额为${Math.floor(rand() * 100000)}元时${pick(zhTails)}。`;
  return `${pick(enTopics)[0].toUpperCase()}${pick(enTopics).slice(1)} ${pick(enTails)}, e.g. ${(rand() * 10).toFixed(2)}% for ${Math.floor(rand() * 36)} months. `;
}
function text(sentences) {
  let out = '';
  for (let i = 0; i < sentences; i++) out += sentence();
  return out;
}
/** A prediction close to the reference: some sentences dropped, replaced or added. */
function perturb(reference, rate) {
  const parts = reference.split(/(?<=[。.] ?)/u);
  const out = [];
  for (const part of parts) {
    const r = rand();
    if (r < rate / 3) continue;
    if (r < (2 * rate) / 3) out.push(sentence());
    else out.push(part);
    if (rand() < rate / 3) out.push(sentence());
  }
  return out.join('');
}
function textOfBytes(bytes) {
  const parts = [];
  let size = 0;
  while (size < bytes) {
    const s = sentence();
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;
const time = (fn) => {
  const start = process.hrtime.bigint();
  const value = fn();
  return { value, s: seconds(start) };
};

console.log(`bench:eval on ${cpus().length} cores, node ${process.version}`);

// Ordinary pairs: 1–6 sentences; most predictions are close, some unrelated, a few empty.
const pairs = [];
for (let i = 0; i < pairCount; i++) {
  const label = text(1 + Math.floor(rand() * 6));
  const r = rand();
  const predict = r < 0.02 ? '' : r < 0.15 ? text(1 + Math.floor(rand() * 6)) : perturb(label, 0.3);
  pairs.push({ predict, label });
}
jiebaCut('预热'); // load the dictionary outside the timing
const normal = time(() => computeSimilarity(pairs));
const s = normal.value.scores;
console.log(
  `${pairCount.toLocaleString('en')} pairs: ${normal.s.toFixed(2)} s (${Math.round(pairCount / normal.s).toLocaleString('en')} pairs/s); ` +
    `BLEU-4 ${s['predict_bleu-4'].toFixed(4)}, ROUGE-1 ${s['predict_rouge-1'].toFixed(4)}, ROUGE-2 ${s['predict_rouge-2'].toFixed(4)}, ROUGE-L ${s['predict_rouge-l'].toFixed(4)}`,
);

if (long) {
  const bytes = Math.round(megabytes * 1024 * 1024);
  const reference = textOfBytes(bytes);
  const variants = [
    ['near copy (0.3% of sentences edited)', perturb(reference, 0.003)],
    ['near copy (5% of sentences edited)', perturb(reference, 0.05)],
    ['unrelated text, same vocabulary', textOfBytes(bytes)],
  ];
  for (const [name, predict] of variants) {
    const mb = (t) => (Buffer.byteLength(t) / 1024 / 1024).toFixed(2);
    const cut = time(() => [jiebaCut(predict), jiebaCut(reference)]);
    const [hyp, ref] = cut.value;
    const bleu = time(() => sentenceBleu(characterTokens(reference), characterTokens(predict)).score);
    const rouge = time(() => rougeScores(hyp.join(' '), ref.join(' ')));
    const whole = time(() => scoreSample({ predict, label: reference }));
    const note = whole.value.notes ? `\n    note: ${whole.value.notes.join('; ')}` : '';
    console.log(
      `${mb(predict)} MB vs ${mb(reference)} MB, ${name}: ${whole.s.toFixed(2)} s in all ` +
        `(jieba ${cut.s.toFixed(2)} s for ${hyp.length.toLocaleString('en')} + ${ref.length.toLocaleString('en')} tokens, ` +
        `BLEU ${bleu.s.toFixed(2)} s, ROUGE-1/2/L ${rouge.s.toFixed(2)} s); ` +
        `BLEU-4 ${whole.value['bleu-4']}, ROUGE-1 ${whole.value['rouge-1']}, ROUGE-2 ${whole.value['rouge-2']}, ROUGE-L ${whole.value['rouge-l']}${note}`,
    );
  }
}
