import pc from 'picocolors';
import { wantsColour } from '@tunepipe/runner';

export type Colours = ReturnType<typeof pc.createColors>;

/**
 * Colours for one output stream: on a terminal unless `NO_COLOR` is set (`FORCE_COLOR` forces
 * them); never in pipes and files, so `--json` and redirected output stay plain.
 */
export function coloursFor(stream: { isTTY?: boolean }, env: Readonly<Record<string, string | undefined>> = process.env): Colours {
  return pc.createColors(wantsColour(stream, env));
}

/**
 * Colours text the CLI printed plain: a table's header (the line above its rule) bold and the rule
 * dim, warnings yellow, errors red, passes green. Line-based, so formatters stay free of colour.
 */
export function paint(text: string, c: Colours): string {
  if (!c.isColorSupported) return text;
  const lines = text.split('\n');
  const isRule = (line: string | undefined) => line !== undefined && /^─[─ ]*$/.test(line);
  return lines
    .map((line, i) => {
      if (isRule(line)) return c.dim(line);
      if (isRule(lines[i + 1])) return c.bold(line);
      if (/^\s*(?:!|⚠)/.test(line)) return c.yellow(line);
      if (/^\s*✗/.test(line)) return c.red(line);
      if (/^\s*✓/.test(line)) return c.green(line);
      if (/^(pipeline|committed manifests|synth) /.test(line)) return c.bold(line);
      return line;
    })
    .join('\n');
}
