// Types of scripts/pins.mjs for the TypeScript tests that import it (test/pins.test.ts).
export declare const pinsFile: string;
export declare const pinsGenFile: string;
/** Dockerfile path → ARG name → path into pins.json. */
export declare const DOCKERFILE_ARGS: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
export declare function readPins(): Record<string, unknown>;
export declare function pinAt(pins: unknown, path: readonly string[]): string;
export declare function renderPinsGen(pins: unknown): string;
export declare function dockerfileArgs(text: string): Map<string, string | null>;
export declare function applyDockerfileArgs(pins: unknown, file: string, text: string): string;
