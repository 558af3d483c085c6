// Test double for the Pulumi engine and providers (an external system): `pulumi.runtime.setMocks`
// runs the program in-process and this records what it registers. No CLI, cluster or cloud.
import * as pulumi from '@pulumi/pulumi';

export interface Registered {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly custom: boolean;
  readonly provider: string | undefined;
}

export interface EngineDouble {
  readonly registered: Registered[];
  /** Kubernetes objects only (what a cluster would receive). */
  kube(): Registered[];
}

export interface EngineDoubleOptions {
  /** `tunepipe:*` and other stack config, as `pulumi config` stores it (strings, lists as JSON). */
  readonly config?: Record<string, string>;
  /** Outputs of referenced stacks by stack name, and which of them are secrets. */
  readonly stacks?: Record<string, { outputs: Record<string, unknown>; secret?: readonly string[] }>;
  /** Live state a resource reports after its wait (e.g. a Job's `status`), added to its outputs. */
  readonly liveState?: (type: string, name: string) => Record<string, unknown> | undefined;
}

/** Installs fresh mocks and config; call before each program run. */
export function installEngineDouble(options: EngineDoubleOptions = {}): EngineDouble {
  const registered: Registered[] = [];
  pulumi.runtime.setAllConfig(options.config ?? {}, []);
  void pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown>, custom: args.custom ?? true, provider: args.provider });
        if (args.type === 'pulumi:pulumi:StackReference') {
          const stack = options.stacks?.[String(args.inputs['name'])];
          if (!stack) throw new Error(`engine double: no stack ${String(args.inputs['name'])}`);
          return { id: String(args.inputs['name']), state: { ...args.inputs, outputs: stack.outputs, secretOutputNames: [...(stack.secret ?? [])] } };
        }
        return { id: `${args.name}-id`, state: { ...args.inputs, ...options.liveState?.(args.type, args.name) } };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        return args.inputs;
      },
    },
    'tunepipe-pipelines',
    'test',
    false,
  );
  return {
    registered,
    kube: () => registered.filter((r) => r.type.startsWith('kubernetes:') && !r.type.startsWith('pulumi:providers:')),
  };
}

/** Runs a program as the Pulumi language host does and waits until every registration has reached the double. */
export async function runProgram<T>(program: () => Promise<T>): Promise<T> {
  const outputs = await pulumi.runtime.runInPulumiStack(async () => program());
  await settle();
  return outputs as T;
}

/**
 * Runs a program expected to stop and returns what it threw. Outside a stack resource: a stack
 * whose init throws leaves rejected promises behind that only the real language host handles.
 */
export async function runFailingProgram(program: () => Promise<unknown>): Promise<unknown> {
  try {
    await program();
  } catch (error) {
    await settle();
    return error;
  }
  throw new Error('the program was expected to stop, but it completed');
}

/**
 * Registrations are RPCs that finish after construction; this waits for the SDK's RPC queue to
 * drain (`waitForRPCs` is exported at run time but left out of the SDK's typings).
 */
export async function settle(): Promise<void> {
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
}

/** Resolves an Output's value under mocks. */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/**
 * Like runFailingProgram, for a program that fails after it registered resources: the SDK also
 * reports the failure as uncaught rejections of the registrations it stopped (the language host
 * logs them), which node:test would blame on the test. Those are collected and returned instead.
 */
export async function runProgramFailingLate(program: () => Promise<unknown>): Promise<{ error: unknown; uncaught: unknown[] }> {
  const saved = process.listeners('unhandledRejection');
  const uncaught: unknown[] = [];
  const collect = (reason: unknown) => uncaught.push(reason);
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', collect);
  try {
    const error = await runProgram(program).then(
      () => new Error('the program was expected to fail, but it completed'),
      (e: unknown) => e,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The outputs of registrations the failure stopped never settle (the SDK settles a resource's
    // outputs only once it is registered); its leak check would fail the whole test file at exit.
    // The language host skips that check once an error was logged, which is what happened here.
    const debuggable = (await import('@pulumi/pulumi/runtime/debuggable.js')) as unknown as { leakedPromises(): unknown };
    debuggable.leakedPromises();
    return { error, uncaught };
  } finally {
    process.off('unhandledRejection', collect);
    for (const listener of saved) process.on('unhandledRejection', listener);
  }
}
