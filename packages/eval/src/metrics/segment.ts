import { createRequire } from 'node:module';
import type { Jieba } from '@node-rs/jieba';

let jieba: Jieba | undefined;

/**
 * Required on first use, not imported: the native module and the 11 MB of dictionaries it reads would
 * otherwise load at every CLI start, for the one command that scores Chinese text.
 */
function loadJieba(): Jieba {
  const load = createRequire(import.meta.url);
  const { Jieba: JiebaClass } = load('@node-rs/jieba') as typeof import('@node-rs/jieba');
  const { dict } = load('@node-rs/jieba/dict.js') as typeof import('@node-rs/jieba/dict.js');
  return JiebaClass.withDict(dict);
}

/**
 * Chinese word segmentation as Python's `jieba.cut(text)` (accurate mode, HMM on), via jieba-rs
 * with jieba's default dictionary, which ships inside the npm package (no download).
 * The dictionary loads once, on first use (~150 ms).
 */
export function jiebaCut(text: string): string[] {
  if (text.length === 0) return [];
  jieba ??= loadJieba();
  return jieba.cut(text, true);
}
