import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { issuePath, zodParse, type Issue } from '@tunepipe/core';
import { z } from 'zod';
import { parsePythonJson, type ReadResult } from './readers.ts';
import { redactedExcerpt } from './redact.ts';

// The test split as the served model sees it: chat messages up to the last user turn, and the
// reference answer. Rows are built the way LLaMA-Factory's dataset converters build them.

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export interface ChatTestRow {
  readonly messages: readonly ChatMessage[];
  readonly label: string;
  /** `file:line` or `file#index`, for messages about this row. */
  readonly source: string;
}

/** A `dataset_info.json` entry, as far as the test split needs it. */
export const DatasetEntrySchema = z.looseObject({
  file_name: z.string(),
  formatting: z.enum(['alpaca', 'sharegpt', 'openai']).optional(),
  columns: z.record(z.string(), z.string().nullable()).optional(),
  tags: z.record(z.string(), z.string()).optional(),
});
export type DatasetEntry = z.infer<typeof DatasetEntrySchema>;

const FIX = 'the test split must be an alpaca, sharegpt or openai dataset as LLaMA-Factory reads it';

function stringAt(row: Record<string, unknown>, column: string | null | undefined): string | undefined {
  if (!column) return undefined;
  const value = row[column];
  return typeof value === 'string' ? value : undefined;
}

function alpacaRow(row: Record<string, unknown>, entry: DatasetEntry, where: string): { row?: ChatTestRow; issue?: Issue } {
  const c = { prompt: 'instruction', query: 'input', response: 'output', history: null, system: null, ...entry.columns } as Record<string, string | null>;
  const history = row[c['history'] ?? 'history'];
  const prompt = stringAt(row, c['prompt']);
  const query = stringAt(row, c['query']);
  const response = stringAt(row, c['response']);
  if (response === undefined) {
    return { issue: { path: where, code: 'testset.no-response', message: `no '${c['response']}' text to compare with`, value: row, fix: FIX } };
  }
  const content = [prompt, query].filter((s): s is string => !!s).join('\n');
  if (content === '') {
    return { issue: { path: where, code: 'testset.no-prompt', message: `no '${c['prompt']}' or '${c['query']}' text to ask`, value: row, fix: FIX } };
  }
  const messages: ChatMessage[] = [];
  const system = stringAt(row, c['system'] ?? 'system');
  if (system) messages.push({ role: 'system', content: system });
  if (Array.isArray(history)) {
    for (const turn of history) {
      if (!Array.isArray(turn) || turn.length !== 2 || typeof turn[0] !== 'string' || typeof turn[1] !== 'string') {
        return { issue: { path: where, code: 'testset.bad-history', message: 'history must be a list of [prompt, response] pairs', value: turn, fix: FIX } };
      }
      messages.push({ role: 'user', content: turn[0] }, { role: 'assistant', content: turn[1] });
    }
  }
  messages.push({ role: 'user', content });
  return { row: { messages, label: response, source: where } };
}

function conversationRow(
  row: Record<string, unknown>,
  entry: DatasetEntry,
  openai: boolean,
  where: string,
): { row?: ChatTestRow; issue?: Issue } {
  const c = { messages: openai ? 'messages' : 'conversations', system: null, ...entry.columns } as Record<string, string | null>;
  const t = {
    role_tag: openai ? 'role' : 'from',
    content_tag: openai ? 'content' : 'value',
    user_tag: openai ? 'user' : 'human',
    assistant_tag: openai ? 'assistant' : 'gpt',
    system_tag: 'system',
    ...entry.tags,
  };
  const list = row[c['messages'] ?? 'conversations'];
  if (!Array.isArray(list) || list.length === 0) {
    return { issue: { path: where, code: 'testset.no-messages', message: `'${c['messages']}' must be a non-empty list`, value: list, fix: FIX } };
  }
  const messages: ChatMessage[] = [];
  const system = stringAt(row, c['system']);
  if (system) messages.push({ role: 'system', content: system });
  for (const [index, message] of list.entries()) {
    const m = (message ?? {}) as Record<string, unknown>;
    const tag = m[t.role_tag];
    const content = m[t.content_tag];
    const role = tag === t.user_tag ? 'user' : tag === t.assistant_tag ? 'assistant' : tag === t.system_tag ? 'system' : undefined;
    if (role === undefined || typeof content !== 'string') {
      return {
        issue: {
          path: `${where} ${c['messages']}.${index}`,
          code: 'testset.bad-message',
          message: `expected {${t.role_tag}: '${t.user_tag}'|'${t.assistant_tag}'|'${t.system_tag}', ${t.content_tag}: text}`,
          value: message,
          fix: FIX,
        },
      };
    }
    messages.push({ role, content });
  }
  const last = messages.at(-1)!;
  if (last.role !== 'assistant' || messages.length < 2 || messages.at(-2)!.role !== 'user') {
    return { issue: { path: where, code: 'testset.no-answer', message: 'the conversation must end with a user turn and its assistant answer', value: list.at(-1), fix: FIX } };
  }
  return { row: { messages: messages.slice(0, -1), label: last.content, source: where } };
}

/** Turns parsed records of one dataset file into chat rows; every unusable record is an issue. */
export function toChatRows(records: readonly { data: unknown; where: string }[], entry: DatasetEntry): ReadResult<ChatTestRow[]> {
  const rows: ChatTestRow[] = [];
  const issues: Issue[] = [];
  for (const { data, where } of records) {
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      issues.push({ path: where, code: 'testset.not-an-object', message: 'a row must be a JSON object', value: data, fix: FIX });
      continue;
    }
    const record = data as Record<string, unknown>;
    const formatting = entry.formatting ?? 'alpaca';
    const result = formatting === 'alpaca' ? alpacaRow(record, entry, where) : conversationRow(record, entry, formatting === 'openai', where);
    if (result.row) rows.push(result.row);
    if (result.issue) issues.push(result.issue);
  }
  return { value: rows, issues };
}

/** Records of a `.json` (array) or `.jsonl` file, each with its location. */
async function readRecords(file: string): Promise<ReadResult<{ data: unknown; where: string }[]>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { issues: [{ path: file, code: 'file.missing', message: `cannot read the test split (${(error as NodeJS.ErrnoException).code ?? 'error'})`, fix: 'check the path' }] };
  }
  if (extname(file) === '.jsonl') {
    const records: { data: unknown; where: string }[] = [];
    const issues: Issue[] = [];
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push({ data: parsePythonJson(line), where: `${file}:${i + 1}` });
      } catch (error) {
        issues.push({ path: `${file}:${i + 1}`, code: 'testset.json', message: `not JSON (${(error as Error).message})`, value: redactedExcerpt(line, 120), fix: FIX });
      }
    });
    return { value: records, issues };
  }
  let data: unknown;
  try {
    data = parsePythonJson(text);
  } catch (error) {
    return { issues: [{ path: file, code: 'testset.json', message: `not JSON (${(error as Error).message})`, fix: FIX }] };
  }
  if (!Array.isArray(data)) {
    return { issues: [{ path: file, code: 'testset.not-a-list', message: 'a .json dataset is a list of rows', value: typeof data, fix: FIX }] };
  }
  return { value: data.map((d, i) => ({ data: d, where: `${file}#${i}` })), issues: [] };
}

/** Reads one dataset file; `formatting` is guessed from the first row when not given. */
export async function readTestSetFile(file: string, entry?: Partial<DatasetEntry>): Promise<ReadResult<ChatTestRow[]>> {
  const records = await readRecords(file);
  if (!records.value) return { issues: records.issues };
  const first = records.value[0]?.data as Record<string, unknown> | undefined;
  const guessed = first && Array.isArray(first['messages']) ? 'openai' : first && Array.isArray(first['conversations']) ? 'sharegpt' : 'alpaca';
  const rows = toChatRows(records.value, { file_name: file, ...entry, formatting: entry?.formatting ?? guessed });
  return { value: rows.value ?? [], issues: [...records.issues, ...rows.issues] };
}

/** Reads the named entries of a LLaMA-Factory `dataset_dir` (as `eval_dataset` names them). */
export async function readTestSet(datasetDir: string, entries: readonly string[]): Promise<ReadResult<ChatTestRow[]>> {
  const infoFile = join(datasetDir, 'dataset_info.json');
  let info: Record<string, unknown>;
  try {
    info = parsePythonJson(await readFile(infoFile, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    return { issues: [{ path: infoFile, code: 'testset.dataset-info', message: `cannot read dataset_info.json (${(error as Error).message})`, fix: 'point --dataset-dir at the convert stage output' }] };
  }
  const rows: ChatTestRow[] = [];
  const issues: Issue[] = [];
  for (const name of entries) {
    if (info?.[name] === undefined) {
      issues.push({ path: `${infoFile} ${name}`, code: 'testset.unknown-entry', message: `no entry '${name}'`, fix: `entries here: ${Object.keys(info ?? {}).join(', ')}` });
      continue;
    }
    const parsed = zodParse(DatasetEntrySchema, info[name], {
      area: 'testset.entry',
      formatPath: (path) => `${infoFile} ${issuePath([name, ...path])}`,
      fix: 'regenerate dataset_info.json with the convert stage',
    });
    if (!parsed.ok) {
      issues.push(...parsed.issues);
      continue;
    }
    const result = await readTestSetFile(join(datasetDir, parsed.value.file_name), parsed.value);
    rows.push(...(result.value ?? []));
    issues.push(...result.issues);
  }
  return { value: rows, issues };
}
