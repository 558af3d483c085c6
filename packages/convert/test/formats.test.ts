import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { alpacaYaml, cleanup, configFor, convert, convertIssues, jsonl, tempRepo } from './helpers.ts';

const qa = (i: number): Record<string, string> => ({ instruction: `Question ${i}?`, input: '', output: `Answer ${i}.` });

test('alpaca JSON array and JSONL (and .gz) read to the same rows', async () => {
  const rows = [qa(1), { ...qa(2), input: 'context', system: 'Be brief.' }, { ...qa(3), history: [['hi', 'hello']] }];
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.json'),
    'datasets/a/a.json': JSON.stringify(rows, null, 2),
    'datasets/b/dataset.yaml': alpacaYaml('b.jsonl'),
    'datasets/b/b.jsonl': jsonl(rows),
    'datasets/c/dataset.yaml': alpacaYaml('c.jsonl.gz'),
    'datasets/c/c.jsonl.gz': gzipSync(jsonl(rows)),
  });
  try {
    const expected = [
      { instruction: 'Question 1?', input: '', output: 'Answer 1.', system: '', history: [] },
      { instruction: 'Question 2?', input: 'context', output: 'Answer 2.', system: 'Be brief.', history: [] },
      { instruction: 'Question 3?', input: '', output: 'Answer 3.', history: [['hi', 'hello']], system: '' },
    ];
    // Every row carries its source's optional columns (padded), so each split file has one schema.
    for (const s of ['a', 'b', 'c']) {
      const out = await convert(root, await configFor(root, [s]));
      assert.deepEqual(await out.rows(`${s}.jsonl`), expected, s);
      await cleanup(out.outDir);
    }
    // Together, b and c repeat a's content: exact duplicates across sources are quarantined.
    const issues = await convertIssues(root, await configFor(root, ['a', 'b']));
    assert.deepEqual(issues.map((i) => i.code), ['convert.split-empty']);
  } finally {
    await cleanup(root);
  }
});

test('alpaca column mapping renames fields', async () => {
  const root = await tempRepo({
    'datasets/m/dataset.yaml': alpacaYaml('m.jsonl', 'columns: { instruction: question, output: answer, input: context }\n'),
    'datasets/m/m.jsonl': jsonl([{ question: 'Q?', context: 'C', answer: 'A.' }]),
  });
  try {
    const out = await convert(root, await configFor(root, ['m']));
    assert.deepEqual(await out.rows('m.jsonl'), [{ instruction: 'Q?', input: 'C', output: 'A.' }]);
  } finally {
    await cleanup(root);
  }
});

test('sharegpt from/value and OpenAI role/content both become LLaMA-Factory sharegpt rows', async () => {
  const root = await tempRepo({
    'datasets/s/dataset.yaml': 'format: sharegpt\nfiles: [fv.jsonl, rc.json]\nlicense: MIT\n',
    'datasets/s/fv.jsonl': jsonl([
      { conversations: [{ from: 'system', value: 'You help.' }, { from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello!' }] },
      { conversations: [{ from: 'human', value: 'Weather?' }, { from: 'function_call', value: '{"name":"weather"}' }, { from: 'observation', value: '{"temp":20}' }, { from: 'gpt', value: 'It is 20 degrees.' }], tools: '[{"name":"weather"}]' },
    ]),
    'datasets/s/rc.json': JSON.stringify([
      { messages: [{ role: 'user', content: 'Refund?' }, { role: 'assistant', content: 'Within 30 days.' }, { role: 'user', content: 'Thanks' }, { role: 'assistant', content: 'Welcome.' }] },
      { messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hey' }, { role: 'assistant', content: 'Hi there.' }] },
    ]),
  });
  try {
    const out = await convert(root, await configFor(root, ['s']));
    const rows = await out.rows('s.jsonl');
    assert.equal(rows.length, 4);
    assert.deepEqual(rows[0], { conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello!' }], system: 'You help.', tools: '' });
    assert.deepEqual((rows[1]!['conversations'] as { from: string }[]).map((m) => m.from), ['human', 'function_call', 'observation', 'gpt']);
    assert.equal(rows[1]!['tools'], '[{"name":"weather"}]');
    assert.deepEqual(rows[2], {
      conversations: [
        { from: 'human', value: 'Refund?' },
        { from: 'gpt', value: 'Within 30 days.' },
        { from: 'human', value: 'Thanks' },
        { from: 'gpt', value: 'Welcome.' },
      ],
      system: '',
      tools: '',
    });
    assert.equal(rows[3]!['system'], 'Be kind.');
  } finally {
    await cleanup(root);
  }
});

test('CSV and TSV with a column mapping (quoted commas and newlines survive)', async () => {
  const root = await tempRepo({
    'datasets/c/dataset.yaml': 'format: csv\nfiles: [qa.csv]\nlicense: MIT\ncolumns: { instruction: question, output: answer, input: context }\n',
    'datasets/c/qa.csv': 'question,context,answer\n"What is APR, exactly?",,"The yearly cost of credit,\nincluding fees."\nWhat is APY?,savings,Yield with compounding.\n',
    'datasets/t/dataset.yaml': 'format: tsv\nfiles: [qa.tsv]\nlicense: MIT\ncolumns: { instruction: q, output: a }\n',
    'datasets/t/qa.tsv': 'q\ta\n什么是LPR？\t贷款市场报价利率。\n',
  });
  try {
    const out = await convert(root, await configFor(root, ['c', 't']));
    assert.deepEqual(await out.rows('c.jsonl'), [
      { instruction: 'What is APR, exactly?', input: '', output: 'The yearly cost of credit,\nincluding fees.' },
      { instruction: 'What is APY?', input: 'savings', output: 'Yield with compounding.' },
    ]);
    assert.deepEqual(await out.rows('t.jsonl'), [{ instruction: '什么是LPR？', input: '', output: '贷款市场报价利率。' }]);
  } finally {
    await cleanup(root);
  }
});

test('text corpora: blank-line documents, one per line, and JSONL with a text field', async () => {
  const root = await tempRepo({
    'datasets/p/dataset.yaml': 'format: text\nfiles: [p.txt]\nlicense: MIT\n',
    'datasets/p/p.txt': 'First document\nspans two lines.\n\n\nSecond document.\n',
    'datasets/l/dataset.yaml': 'format: text\nfiles: [l.txt]\nlicense: MIT\nseparator: line\n',
    'datasets/l/l.txt': 'one\n\ntwo\nthree\n',
    'datasets/j/dataset.yaml': 'format: text\nfiles: [j.jsonl]\nlicense: MIT\ncolumns: { text: body }\n',
    'datasets/j/j.jsonl': jsonl([{ body: 'A long article.' }, { body: 'Another one.' }]),
  });
  try {
    const out = await convert(root, await configFor(root, ['p', 'l', 'j']));
    assert.deepEqual(await out.rows('p.jsonl'), [{ text: 'First document\nspans two lines.' }, { text: 'Second document.' }]);
    assert.deepEqual(await out.rows('l.jsonl'), [{ text: 'one' }, { text: 'two' }, { text: 'three' }]);
    assert.deepEqual(await out.rows('j.jsonl'), [{ text: 'A long article.' }, { text: 'Another one.' }]);
  } finally {
    await cleanup(root);
  }
});

test('a file that is not its declared format is one clear error, not a row error per line', async () => {
  const csv = 'question,answer\n' + Array.from({ length: 5000 }, (_, i) => `q${i},a${i}`).join('\n') + '\n';
  const root = await tempRepo({
    'datasets/j/dataset.yaml': alpacaYaml('j.jsonl'),
    'datasets/j/j.jsonl': csv,
    'datasets/a/dataset.yaml': alpacaYaml('a.json'),
    'datasets/a/a.json': jsonl([qa(1), qa(2)]),
    'datasets/c/dataset.yaml': 'format: csv\nfiles: [c.csv]\nlicense: MIT\ncolumns: { instruction: question, output: answer }\n',
    'datasets/c/c.csv': JSON.stringify([qa(1)]),
    'datasets/t/dataset.yaml': 'format: tsv\nfiles: [t.tsv]\nlicense: MIT\ncolumns: { instruction: question, output: answer }\n',
    'datasets/t/t.tsv': csv,
    'datasets/g/dataset.yaml': alpacaYaml('g.jsonl'),
    'datasets/g/g.jsonl': gzipSync(jsonl([qa(1)])),
  });
  try {
    const issues = await convertIssues(root, await configFor(root, ['j', 'a', 'c', 't', 'g']));
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i]));
    assert.deepEqual(Object.keys(byPath).sort(), ['datasets/a/a.json', 'datasets/c/c.csv', 'datasets/g/g.jsonl', 'datasets/j/j.jsonl', 'datasets/t/t.tsv']);
    assert.match(byPath['datasets/j/j.jsonl']!.message, /not JSON Lines.*looks like CSV/);
    assert.match(byPath['datasets/a/a.json']!.message, /not a JSON array/);
    assert.match(byPath['datasets/a/a.json']!.fix ?? '', /name it \.jsonl/);
    assert.match(byPath['datasets/c/c.csv']!.message, /starts like (JSON|a JSON)/);
    assert.match(byPath['datasets/t/t.tsv']!.fix ?? '', /format: csv/);
    assert.match(byPath['datasets/g/g.jsonl']!.message, /gzip-compressed/);
    for (const i of issues) assert.equal(i.code, 'convert.file-format');
  } finally {
    await cleanup(root);
  }
});

test('a JSON array with a broken bracket structure is one error naming where it breaks', async () => {
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.json'),
    'datasets/a/a.json': `[\n${JSON.stringify(qa(1))},\n{"instruction": "unclosed", "output": "x",\n${JSON.stringify(qa(2))}\n]\n`,
  });
  try {
    const issues = await convertIssues(root, await configFor(root, ['a']));
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /not closed.*record 2 \(line 3\)/);
  } finally {
    await cleanup(root);
  }
});

test('a stray closing brace spoils only its own element of a JSON array', async () => {
  const root = await tempRepo({
    'datasets/a/dataset.yaml': alpacaYaml('a.json'),
    'datasets/a/a.json': `[${JSON.stringify(qa(1))}}, ${JSON.stringify(qa(2))},\n${JSON.stringify(qa(3))}]`,
  });
  try {
    const out = await convert(root, await configFor(root, ['a']));
    assert.deepEqual((await out.rows('a.jsonl')).map((r) => r['instruction']), ['Question 2?', 'Question 3?']);
    assert.deepEqual((await out.quarantine()).map((q) => [q.record, q.line, q.reason]), [[1, 1, 'malformed_json']]);
  } finally {
    await cleanup(root);
  }
});
