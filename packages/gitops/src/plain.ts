import { renderManifests, type CompiledPipeline } from '@tunepipe/core';
import { assertRenderable, type GitopsFile } from './pipeline.ts';

/**
 * One file per object plus a kustomization.yaml listing them (core's `renderManifests`), after the
 * checks every GitOps flavor needs (stage graph, no Job TTL, no committed suspend). The one writer
 * `tunepipe synth` uses for plain output.
 */
export function renderPlain(compiled: CompiledPipeline): GitopsFile[] {
  assertRenderable(compiled);
  return renderManifests(compiled);
}
