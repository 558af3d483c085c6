import { Jieba } from '@node-rs/jieba';
import { dict } from '@node-rs/jieba/dict.js';

let jieba: Jieba | undefined;

/**
 * Chinese word segmentation as Python's `jieba.cut(text)` (accurate mode, HMM on), via jieba-rs
 * with jieba's default dictionary, which ships inside the npm package (no download).
 * The dictionary loads once, on first use (~150 ms).
 */
export function jiebaCut(text: string): string[] {
  if (text.length === 0) return [];
  jieba ??= Jieba.withDict(dict);
  return jieba.cut(text, true);
}
