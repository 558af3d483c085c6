import { redactSecrets } from '@tunepipe/core';

// Redaction of text that came from elsewhere (a server's error body, a model's answer) before it is
// shown. Two rules make it safe to show any part of the result:
//   1. redact first, cut afterwards: cutting first can split a secret so that no rule recognises
//      the piece that is left, which is then printed;
//   2. a known secret (the API key we sent) is redacted wherever any piece of it at least
//      SECRET_PIECE characters long appears, also behind JSON (`\/`, `\u0041`) or URL (`%2F`)
//      escapes, because servers echo keys truncated, quoted and escaped.

/** Shortest piece of a known secret that is redacted on its own (shorter secrets: only whole). */
export const SECRET_PIECE = 8;

/** What replaces a known secret, or any piece of one. */
export const REDACTED_KEY = '<redacted:api-key>';

/** The text with escapes decoded, and for each decoded character the raw span it came from. */
interface Decoded {
  readonly text: string;
  readonly start: readonly number[];
  readonly end: readonly number[];
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Decodes JSON string escapes and URL percent escapes, remembering where each character was. */
function decodeEscapes(raw: string): Decoded | undefined {
  if (!/[\\%]/.test(raw)) return undefined;
  let text = '';
  const start: number[] = [];
  const end: number[] = [];
  let i = 0;
  // Every decoded unit is one UTF-16 unit, so positions in `text` index `start`/`end` directly.
  const push = (unit: string, from: number, to: number) => {
    text += unit;
    start.push(from);
    end.push(to);
  };
  while (i < raw.length) {
    const ch = raw[i]!;
    if (ch === '\\' && i + 1 < raw.length) {
      const next = raw[i + 1]!;
      if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(raw.slice(i + 2, i + 6))) {
        push(String.fromCharCode(Number.parseInt(raw.slice(i + 2, i + 6), 16)), i, i + 6);
        i += 6;
        continue;
      }
      if (Object.hasOwn(SIMPLE_ESCAPES, next)) {
        push(SIMPLE_ESCAPES[next]!, i, i + 2);
        i += 2;
        continue;
      }
    }
    if (ch === '%' && /^[0-9a-fA-F]{2}$/.test(raw.slice(i + 1, i + 3))) {
      push(String.fromCharCode(Number.parseInt(raw.slice(i + 1, i + 3), 16)), i, i + 3);
      i += 3;
      continue;
    }
    push(ch, i, i + 1);
    i++;
  }
  return { text, start, end };
}

/** Calls `mark` for every window of `text` that is a piece of `secret` (see SECRET_PIECE). */
function markPieces(text: string, secret: string, mark: (from: number, to: number) => void): void {
  const piece = Math.min(SECRET_PIECE, secret.length);
  const pieces = new Set<string>();
  for (let i = 0; i + piece <= secret.length; i++) pieces.add(secret.slice(i, i + piece));
  // Any common run of `piece` or more characters is covered by the windows of `piece` inside it.
  for (let i = 0; i + piece <= text.length; i++) {
    if (pieces.has(text.slice(i, i + piece))) mark(i, i + piece);
  }
}

/**
 * `text` with every known secret (and every piece of one at least SECRET_PIECE characters long,
 * escaped or not) replaced by REDACTED_KEY, then every secret-shaped value (tokens, keys, private
 * keys: core's `redactSecrets`) replaced by `<redacted:kind>`. Apply it to the whole text before
 * cutting it for display.
 */
export function redactText(text: string, secrets: readonly (string | undefined)[] = []): string {
  const known = secrets.filter((s): s is string => typeof s === 'string' && s.length > 0);
  if (known.length === 0 || text.length === 0) return redactSecrets(text);
  const hidden = new Uint8Array(text.length);
  const hide = (from: number, to: number) => hidden.fill(1, from, to);
  const decoded = decodeEscapes(text);
  for (const secret of known) {
    markPieces(text, secret, hide);
    if (decoded) markPieces(decoded.text, secret, (from, to) => hide(decoded.start[from]!, decoded.end[to - 1]!));
  }
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (!hidden[i]) {
      const next = hidden.indexOf(1, i);
      const stop = next === -1 ? text.length : next;
      out += text.slice(i, stop);
      i = stop;
      continue;
    }
    while (i < text.length && hidden[i]) i++;
    out += REDACTED_KEY;
  }
  return redactSecrets(out);
}

/**
 * Redacted (see `redactText`), whitespace runs made single spaces, then cut to `max` characters
 * with an ellipsis: the one way a response body or a log excerpt is shortened for display.
 */
export function clipRedacted(text: string, secrets: readonly (string | undefined)[] = [], max = 160): string {
  const flat = redactText(text, secrets).replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  // Never end inside a redaction marker: a half marker reads like a value.
  let cut = max - 1;
  const marker = flat.lastIndexOf('<redacted:', cut);
  if (marker !== -1 && flat.indexOf('>', marker) >= cut) cut = marker;
  return `${flat.slice(0, cut)}…`;
}

/** Secret shapes are matched this far past a cut, so a secret that starts before it is seen whole. */
const EXCERPT_WINDOW = 8192;

/**
 * The start of `text` for an issue's value (a bad line of a file): secret-shaped values redacted
 * first, over a window past the cut, then cut to `max` characters with `...`.
 */
export function redactedExcerpt(text: string, max = 120): string {
  const window = text.length > max + EXCERPT_WINDOW ? text.slice(0, max + EXCERPT_WINDOW) : text;
  const redacted = redactText(window);
  return redacted.length > max || window !== text ? `${redacted.slice(0, max - 3)}...` : redacted;
}
