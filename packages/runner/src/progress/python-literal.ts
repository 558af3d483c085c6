/**
 * A reader for the Python literals LLaMA-Factory and transformers print in their logs
 * (`{'loss': 1.4229, 'learning_rate': 4.9978e-05}`): single-quoted strings, True/False/None,
 * nan/inf. JSON.parse rejects all of these, so the log lines need their own reader.
 */

export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  fail(): never {
    throw new SyntaxError(`not a Python literal at ${this.pos}`);
  }

  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  value(): PyValue {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === '{') return this.dict();
    if (c === '[' || c === '(') return this.list(c === '[' ? ']' : ')');
    if (c === "'" || c === '"') return this.string(c);
    return this.atom();
  }

  dict(): { [key: string]: PyValue } {
    const out: { [key: string]: PyValue } = {};
    this.pos++;
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === '}') {
        this.pos++;
        return out;
      }
      const key = this.value();
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail();
      this.pos++;
      out[String(key)] = this.value();
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== '}') this.fail();
    }
  }

  list(close: string): PyValue[] {
    const out: PyValue[] = [];
    this.pos++;
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(this.value());
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== close) this.fail();
    }
  }

  string(quote: string): string {
    let out = '';
    this.pos++;
    while (this.pos < this.text.length) {
      const c = this.text[this.pos++]!;
      if (c === quote) return out;
      if (c === '\\') {
        const next = this.text[this.pos++];
        out += next === 'n' ? '\n' : next === 't' ? '\t' : (next ?? '');
      } else out += c;
    }
    return this.fail();
  }

  atom(): PyValue {
    const match = /^(?:-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|-?inf|nan|True|False|None)/.exec(
      this.text.slice(this.pos),
    );
    if (!match) this.fail();
    this.pos += match[0].length;
    switch (match[0]) {
      case 'True':
        return true;
      case 'False':
        return false;
      case 'None':
        return null;
      case 'nan':
        return Number.NaN;
      case 'inf':
        return Number.POSITIVE_INFINITY;
      case '-inf':
        return Number.NEGATIVE_INFINITY;
      default:
        return Number(match[0]);
    }
  }
}

/** Parses the Python dict literal that starts at `start` in `text`; `undefined` if it is not one. */
export function parsePythonDict(text: string, start = 0): { value: { [key: string]: PyValue }; end: number } | undefined {
  if (text[start] !== '{') return undefined;
  const reader = new Reader(text);
  reader.pos = start;
  try {
    const value = reader.dict();
    return { value, end: reader.pos };
  } catch {
    return undefined;
  }
}
