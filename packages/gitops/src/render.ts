import type { CompiledPipeline } from '@tunepipe/core';
import { renderArgoCd } from './argocd.ts';
import { renderFlux } from './flux.ts';
import { renderPlain, withGeneratedHeader } from './plain.ts';
import type { GitopsFile } from './pipeline.ts';
import type { GitopsOptions } from './options.ts';

/**
 * The files of one pipeline's GitOps output, paths relative to the folder they are committed to
 * (`options.path` for Argo CD and Flux), each YAML file headed by `generatedHeader`.
 * Deterministic: same compiled pipeline, same bytes.
 */
export function renderGitops(compiled: CompiledPipeline, options: GitopsOptions): GitopsFile[] {
  switch (options.flavor) {
    case 'plain':
      return renderPlain(compiled);
    case 'argocd':
      return withGeneratedHeader(compiled.pipeline, renderArgoCd(compiled, options));
    case 'flux':
      return withGeneratedHeader(compiled.pipeline, renderFlux(compiled, options));
  }
}
