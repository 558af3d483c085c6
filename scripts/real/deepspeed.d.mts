// Types of scripts/real/deepspeed.mjs for the TypeScript tests that import it.
export interface DeepSpeedLayer {
  /** A `pip install --target` folder: on PYTHONPATH, the venv imports DeepSpeed from it. */
  readonly sitePackages: string;
  /** TORCH_EXTENSIONS_DIR holding the C++ ops DeepSpeed JIT-built on this CPU. */
  readonly torchExtensions: string;
  readonly key: string;
  readonly version: string;
  readonly installSeconds: number;
  readonly opsSeconds: number;
}
export declare const deepSpeedLockFile: string;
export declare function deepSpeedEnv(layer: DeepSpeedLayer): Record<string, string>;
export declare function install(): Promise<DeepSpeedLayer>;
