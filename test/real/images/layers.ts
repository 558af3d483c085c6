// What an image's pip layer installed, next to the base it sits on (the GPTQ and QLoRA images are
// layers over LLaMA-Factory's venv).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageReport } from '../../../scripts/real/images.mjs';

/** `name → version` of every distribution in a site-packages folder (names normalised as pip does). */
export function distributions(sitePackages: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(sitePackages)) {
    const m = /^(.+)-([^-]+)\.dist-info$/.exec(entry);
    if (m) out.set(m[1]!.toLowerCase().replace(/[-_.]+/g, '-'), m[2]!);
  }
  return out;
}

/** The distributions of the image's own layer and of the base it was installed over. */
export function layerAndBase(report: ImageReport): { layer: Map<string, string>; base: Map<string, string> } {
  const venv = report.python!.venv;
  return {
    layer: distributions(join(venv, 'lib', readdirSync(join(venv, 'lib'))[0]!, 'site-packages')),
    base: distributions(report.stages[0]!.baseSitePackages!),
  };
}
