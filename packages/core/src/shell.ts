/** A POSIX shell word: left bare when it holds no character the shell treats specially. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The quoting in effect at a place in a POSIX sh script. */
export type ShellQuoting = 'none' | 'single' | 'double';

/**
 * The quoting in effect after reading `text` (a piece of a script), starting in `from`: single and
 * double quotes, backslash escapes and `#` comments. Enough for the scripts tunepipe writes (no
 * here-documents, and no quotes nested inside `$(…)` within double quotes).
 */
export function quotingAfter(text: string, from: ShellQuoting = 'none'): ShellQuoting {
  let quoting = from;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoting === 'single') {
      if (c === "'") quoting = 'none';
    } else if (quoting === 'double') {
      if (c === '\\') i++;
      else if (c === '"') quoting = 'none';
    } else if (c === '\\') i++;
    else if (c === "'") quoting = 'single';
    else if (c === '"') quoting = 'double';
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const end = text.indexOf('\n', i);
      if (end === -1) break;
      i = end;
    }
  }
  return quoting;
}

/** `word` as text to splice into a script where `quoting` is in effect, so the shell reads it literally. */
export function shellQuoteIn(word: string, quoting: ShellQuoting): string {
  switch (quoting) {
    case 'none':
      return shellQuote(word);
    case 'single':
      return word.replace(/'/g, `'\\''`);
    case 'double':
      return word.replace(/[\\$`"]/g, '\\$&');
  }
}
