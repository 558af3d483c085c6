import * as pulumi from '@pulumi/pulumi';
import { CheckError, formatIssue } from '@tunepipe/core';
import { selectPipelines, synthPipeline, WorkspaceError } from '@tunepipe/workspace';
import type { CompilePipeline } from './program.ts';

/**
 * The fs edge of the pipelines stack: compiles a pipeline of the repository exactly as
 * `tunepipe synth` does (the same workspace loader and compile context), with the cluster's
 * placement as the overrides. Workspace errors become CheckErrors so the program lists them with the rest.
 */
export function compileFromRepo(repoRoot: string): CompilePipeline {
  return async (name, placement) => {
    try {
      selectPipelines(repoRoot, [name]);
      const { compiled, warnings } = await synthPipeline(repoRoot, name, placement);
      for (const warning of warnings) void pulumi.log.warn(`pipeline ${name}: ${formatIssue(warning)}`);
      return compiled;
    } catch (error) {
      if (!(error instanceof WorkspaceError)) throw error;
      const issues = error.issues.length > 0 ? error.issues : [{ code: 'workspace.error', path: `pipelines/${name}`, message: error.message }];
      throw new CheckError(error.issues.length > 0 ? error.message : `pipeline ${name}`, issues);
    }
  };
}
