// What each cloud machine carries, so the stack can (a) refuse a GPU catalogue id that does not
// match the hardware (a Job asking for `a100-80gb` would otherwise wait forever on a g5 node) and
// (b) tell the cluster autoscaler how many GPUs a node from an empty group will have.

/** An NVIDIA GPU model as the catalogue ids name it: the planner's catalogue ids (`a10g`, `a100-80gb`). */
export interface GpuModel {
  /** Leading token of a catalogue id for this model. */
  readonly model: string;
  readonly memoryGb: number;
  /** The id of this GPU in the planner's catalogue (packages/core/src/planner/gpus.ts). */
  readonly catalogueId: string;
}

const T4: GpuModel = { model: 't4', memoryGb: 16, catalogueId: 't4' };
const A10G: GpuModel = { model: 'a10g', memoryGb: 24, catalogueId: 'a10g' };
const L4: GpuModel = { model: 'l4', memoryGb: 24, catalogueId: 'l4' };
const L40S: GpuModel = { model: 'l40s', memoryGb: 48, catalogueId: 'l40s' };
const A100_40: GpuModel = { model: 'a100', memoryGb: 40, catalogueId: 'a100-40gb' };
const A100_80: GpuModel = { model: 'a100', memoryGb: 80, catalogueId: 'a100-80gb' };
const H100: GpuModel = { model: 'h100', memoryGb: 80, catalogueId: 'h100-80gb' };
const H200: GpuModel = { model: 'h200', memoryGb: 141, catalogueId: 'h200' };

export interface MachineGpus {
  readonly gpu: GpuModel;
  readonly count: number;
}

/** EC2 instance types with NVIDIA GPUs that the EKS accelerated AL2023 NVIDIA AMI supports. */
export const AWS_GPU_INSTANCES: Readonly<Record<string, MachineGpus>> = {
  ...family('g4dn', T4, { xlarge: 1, '2xlarge': 1, '4xlarge': 1, '8xlarge': 1, '16xlarge': 1, '12xlarge': 4, metal: 8 }),
  ...family('g5', A10G, { xlarge: 1, '2xlarge': 1, '4xlarge': 1, '8xlarge': 1, '16xlarge': 1, '12xlarge': 4, '24xlarge': 4, '48xlarge': 8 }),
  ...family('g6', L4, { xlarge: 1, '2xlarge': 1, '4xlarge': 1, '8xlarge': 1, '16xlarge': 1, '12xlarge': 4, '24xlarge': 4, '48xlarge': 8 }),
  ...family('g6e', L40S, { xlarge: 1, '2xlarge': 1, '4xlarge': 1, '8xlarge': 1, '16xlarge': 1, '12xlarge': 4, '24xlarge': 4, '48xlarge': 8 }),
  ...family('p4d', A100_40, { '24xlarge': 8 }),
  ...family('p4de', A100_80, { '24xlarge': 8 }),
  ...family('p5', H100, { '4xlarge': 1, '48xlarge': 8 }),
  ...family('p5e', H200, { '48xlarge': 8 }),
  ...family('p5en', H200, { '48xlarge': 8 }),
};

function family(prefix: string, gpu: GpuModel, sizes: Record<string, number>): Record<string, MachineGpus> {
  return Object.fromEntries(Object.entries(sizes).map(([size, count]) => [`${prefix}.${size}`, { gpu, count }]));
}

/**
 * GKE accelerator types (the `--accelerator type=` / `cloud.google.com/gke-accelerator` values, as
 * Compute Engine names its GPU models), the GPU they are and the machine families they attach to.
 */
export const GCP_ACCELERATORS: Readonly<Record<string, { readonly gpu: GpuModel; readonly machineFamilies: readonly string[] }>> = {
  'nvidia-tesla-t4': { gpu: T4, machineFamilies: ['n1'] },
  'nvidia-l4': { gpu: L4, machineFamilies: ['g2'] },
  'nvidia-tesla-a100': { gpu: A100_40, machineFamilies: ['a2'] },
  'nvidia-a100-80gb': { gpu: A100_80, machineFamilies: ['a2'] },
  'nvidia-h100-80gb': { gpu: H100, machineFamilies: ['a3'] },
  'nvidia-h100-mega-80gb': { gpu: H100, machineFamilies: ['a3'] },
  'nvidia-h200-141gb': { gpu: H200, machineFamilies: ['a3'] },
};

/**
 * GPUs built into accelerator-optimized GCE machine types (g2, a2, a3); `undefined` for N1,
 * where the count is chosen freely.
 */
export function gcpBuiltInGpuCount(machineType: string): number | undefined {
  const g2 = /^g2-standard-(\d+)$/.exec(machineType);
  if (g2) {
    const vcpus = Number(g2[1]);
    const byVcpus: Record<number, number> = { 4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8 };
    return byVcpus[vcpus];
  }
  const a = /^a[23]-(?:highgpu|megagpu|ultragpu|edgegpu)-(\d+)g$/.exec(machineType);
  if (a) return Number(a[1]);
  return undefined;
}

export function machineFamily(machineType: string): string {
  return machineType.split('-')[0] ?? machineType;
}

/**
 * Whether a GPU catalogue id names this model: the id starts with the model token and, when it
 * states a memory size (`-80gb`), that size matches.
 */
export function catalogueIdMatches(id: string, gpu: GpuModel): boolean {
  const [model, ...rest] = id.split('-');
  if (model !== gpu.model) return false;
  const memory = rest.map((part) => /^(\d+)gb$/.exec(part)).find((m) => m !== null);
  return memory ? Number(memory[1]) === gpu.memoryGb : true;
}

/** The catalogue id this stack suggests for a model: the planner's, which the compiler's node selectors use. */
export function suggestedCatalogueId(gpu: GpuModel): string {
  return gpu.catalogueId;
}
