// Types of scripts/real/python.mjs for the TypeScript tests that import it.
export interface PythonTools {
  readonly venv: string;
  readonly python: string;
  readonly bin: string;
  readonly sitePackages: string;
  readonly key: string;
  readonly sizeBytes: number;
  readonly versions: Readonly<Record<string, string>>;
}
export declare const lockFile: string;
export declare function lockRequirements(): string[];
export declare function lockIsCurrent(): boolean;
export declare function install(): Promise<PythonTools>;
/** The environment every run of the venv's python gets (offline, no user site). */
export declare function pythonEnv(extra?: Record<string, string>): Record<string, string>;
export declare function venvPython(tools: unknown): string;
export declare function runPython(
  python: string,
  args: readonly string[],
  options?: { env?: Record<string, string>; cwd?: string; input?: string; allowFail?: boolean; logFile?: string },
): { status: number | null; stdout: string; stderr: string; output: string };
