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
