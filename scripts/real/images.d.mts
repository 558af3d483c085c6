// Types of scripts/real/images.mjs for the TypeScript tests that import it.
export interface ImageStep {
  readonly line: number;
  /** The instruction or shell command, as the Dockerfile writes it. */
  readonly what: string;
  /** `ran`/`applied`: carried out; `dry-run`: resolved and set up but not compiled; `not run`: reported only. */
  readonly how: 'applied' | 'ran' | 'dry-run' | 'not run' | 'recorded';
  readonly detail?: string;
  /** A `pip install` that ran: each distribution it installed and the URL of the file it came from. */
  readonly installed?: readonly { readonly name: string; readonly version: string; readonly url: string }[];
}
export interface ImageStage {
  readonly from: string;
  readonly name?: string;
  readonly base: string;
  readonly steps: readonly ImageStep[];
  /** The folder standing in for the stage's file system (final stage only; earlier ones are removed). */
  readonly root: string;
  /** ARG and ENV values of the stage, image paths mapped into `root`. */
  readonly env: Readonly<Record<string, string>>;
  readonly cmd?: readonly string[];
  readonly entrypoint?: readonly string[];
  /** site-packages of the LLaMA-Factory venv a GPTQ or QLoRA layer sits on. */
  readonly baseSitePackages?: string;
}
export interface ImageReport {
  readonly image: string;
  readonly dockerfile: string;
  readonly stages: readonly ImageStage[];
  readonly python?: { readonly venv: string; readonly python: string; readonly version?: string };
}
export declare const IMAGES: Readonly<Record<'fetch' | 'gptq' | 'qlora' | 'runtime', { readonly dockerfile: string; readonly context: string }>>;
export declare function buildImage(name: 'fetch' | 'gptq' | 'qlora' | 'runtime'): Promise<{ dir: string; report: ImageReport }>;
export declare function expandVariables(text: string, vars: Readonly<Record<string, string>>): string;
export declare function splitShell(command: string, vars: Readonly<Record<string, string>>): { text: string; argv: string[]; stdoutTo?: string; compound: boolean }[];
export declare function dockerignored(path: string, patterns: readonly string[]): boolean;
export declare function readDockerfile(text: string): {
  globalArgs: Record<string, string>;
  stages: { index: number; name?: string; image: string; line: number; steps: { keyword: string; line: number }[] }[];
};
