/**
 * Token estimates without a tokenizer (the converter must not download one).
 *
 * Text is split into CJK characters (Han, kana, Hangul, CJK/full-width punctuation) and everything
 * else, measured in UTF-8 bytes. Measured tokenizers land between the two bounds: Llama-3 and
 * Qwen2.5 spend about 0.7–1.1 tokens per common Han character and about 1 token per 4–4.5 bytes of
 * English prose (numbers and code are denser, about 1 per 3 bytes).
 *
 * - `upper` (cutoff check, must not under-count, else LLaMA-Factory silently truncates the answer):
 *   1.5 per CJK character + 1 per 3 other bytes + 8 per message (role headers, end-of-turn) + 16
 *   per example (BOS and template scaffolding).
 * - `lower` (calibration check, must not over-count, else GPTQ fails with "Cannot find satisfying
 *   example"): 0.5 per CJK character + 1 per 6 other bytes, no template overhead.
 */
export const TOKEN_ESTIMATE = {
  method: 'char-class estimate (no tokenizer)',
  upper: 'ceil(1.5 * cjk_chars + other_utf8_bytes / 3) + 8 * messages + 16',
  lower: 'floor(0.5 * cjk_chars + other_utf8_bytes / 6)',
} as const;

export const UPPER_PER_MESSAGE = 8;
export const UPPER_PER_EXAMPLE = 16;

/** Character-class counts of some text; add them up across the fields of a row. */
export interface TextMeasure {
  cjk: number;
  otherBytes: number;
}

export const isCjkCode = (c: number): boolean =>
  (c >= 0x2e80 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xff00 && c <= 0xffef);

/** Adds the counts of `text` to `into`. A surrogate pair (4 UTF-8 bytes) counts as one CJK char when it is a CJK extension (U+20000–U+3FFFF). */
export function measureText(text: string, into: TextMeasure): TextMeasure {
  let cjk = 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) other += 1;
    else if (c < 0x800) other += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      if (c >= 0xd840 && c <= 0xd8bf) cjk += 1;
      else other += 4;
      i++;
    } else if (isCjkCode(c)) cjk += 1;
    else other += 3;
  }
  into.cjk += cjk;
  into.otherBytes += other;
  return into;
}

export function upperTokens(m: TextMeasure, messages: number): number {
  return Math.ceil(1.5 * m.cjk + m.otherBytes / 3) + UPPER_PER_MESSAGE * messages + UPPER_PER_EXAMPLE;
}

export function lowerTokens(m: TextMeasure): number {
  return Math.floor(0.5 * m.cjk + m.otherBytes / 6);
}

/** Convenience for one string. */
export function estimateTokens(text: string): { upper: number; lower: number } {
  const m = measureText(text, { cjk: 0, otherBytes: 0 });
  return { upper: upperTokens(m, 1), lower: lowerTokens(m) };
}
