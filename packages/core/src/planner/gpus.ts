import { MiB, TFLOP } from './units.ts';

/** Clouds whose list prices the catalogue carries. */
export const CLOUDS = ['aws', 'gcp'] as const;
export type Cloud = (typeof CLOUDS)[number];

/** GPU catalogue ids: the value of the node label `tunepipe.dev/gpu` (LABELS.gpuType). */
export const GPU_IDS = ['t4', 'a10g', 'l4', 'l40s', 'a100-40gb', 'a100-80gb', 'h100-80gb', 'h200'] as const;
export type GpuId = (typeof GPU_IDS)[number];

/** A machine type that carries the GPU, and how many of them. */
export interface InstanceOffer {
  readonly instanceType: string;
  readonly gpus: number;
  /** The node's network to other nodes, where the cloud publishes it (multi-node training). */
  readonly network?: NodeNetwork;
  /** The machine's RAM in GiB as the cloud lists it (ZeRO-3 offload keeps optimizer states there). */
  readonly hostMemoryGiB?: number;
}

/** A node's network to other nodes. */
export interface NodeNetwork {
  /** Listed bandwidth of the whole node, Gbit/s. */
  readonly gbps: number;
  /**
   * GPUDirect RDMA-class transport (AWS EFA with GPUDirect RDMA, GCP GPUDirect-TCPX/TCPXO/RoCE):
   * NCCL moves GPU memory to the network without copies through host memory. Without it the
   * network is fast Ethernet at best and multi-node training is slow.
   */
  readonly gpuDirect: boolean;
  /** Where the figure is published. */
  readonly source: string;
}

/** How GPUs of one node exchange data: NVLink (SXM boards) or PCIe (through the host's PCIe switches). */
export interface Interconnect {
  readonly kind: 'nvlink' | 'pcie';
  /** e.g. `NVLink 4 (18 links)`, `PCIe Gen4 x16`. */
  readonly generation: string;
  /** Bandwidth per GPU per direction, bytes/s (NVIDIA quotes the bidirectional sum: half of it). */
  readonly bytesPerSecond: number;
  readonly source: string;
}

/** An on-demand list price, turned into a price per GPU-hour. */
export interface GpuPrice {
  readonly usdPerGpuHour: number;
  /** The machine type the price is read from; the per-GPU price is its hourly price / its GPUs. */
  readonly instanceType: string;
  readonly gpusPerInstance: number;
  readonly instanceUsdPerHour: number;
  readonly region: string;
}

export interface GpuSpec {
  readonly id: GpuId;
  /** Device name as `nvidia-smi` prints it. */
  readonly name: string;
  readonly architecture: 'Turing' | 'Ampere' | 'Ada Lovelace' | 'Hopper';
  readonly computeCapability: number;
  /**
   * Total device memory in bytes as `nvidia-smi --query-gpu=memory.total` reports it (MiB × 2^20),
   * i.e. what is left after ECC reservation. This is what vLLM's `gpu_memory_utilization` multiplies
   * and what an allocation must fit in. It is less than the marketed size.
   */
  readonly memoryBytes: number;
  /** The marketed size and what it means, e.g. `80 GB HBM3 (81559 MiB visible = 79.6 GiB)`. */
  readonly marketedMemory: string;
  /** Dense (no 2:4 sparsity) bf16 tensor-core peak, FLOP/s; `null` when the GPU has no bf16 (T4). */
  readonly bf16DenseFlops: number | null;
  /** Dense fp16 tensor-core peak with fp32 accumulation, FLOP/s. */
  readonly fp16DenseFlops: number;
  /** Non-tensor fp32 peak, FLOP/s (PyTorch does not use TF32 for matmuls unless told to). */
  readonly fp32Flops: number;
  readonly memoryBandwidthBytesPerSecond: number;
  /** On-demand list price per GPU-hour per cloud; absent when the cloud has no such GPU (or no list price). */
  readonly prices: Readonly<Partial<Record<Cloud, GpuPrice>>>;
  /** Machine types carrying the GPU per cloud (empty: not offered there). */
  readonly instances: Readonly<Record<Cloud, readonly InstanceOffer[]>>;
  /** GPU-to-GPU within a node. */
  readonly interconnect: Interconnect;
  readonly notes: readonly string[];
}

/**
 * When the prices below were gathered, and what they are. They are indicative: on-demand list
 * prices for Linux in AWS us-east-1 and GCP us-central1, whole machine (GPU + its vCPUs and RAM)
 * divided by its GPUs. AWS P4/P5 prices are those after AWS's June 2025 reduction. Spot,
 * reservations, savings plans and other regions differ (often by 2-3×); pass `prices` to the
 * planner to use your own.
 */
export const PRICES_AS_OF = '2026-11-27';
export const PRICES_NOTE =
  `Indicative on-demand list prices (AWS us-east-1, GCP us-central1, Linux) gathered ${PRICES_AS_OF}; ` +
  'whole machine divided by its GPUs; spot, commitments and other regions differ.';

const mib = (n: number) => n * MiB;
const tflops = (n: number) => n * TFLOP;
const price = (instanceType: string, gpusPerInstance: number, instanceUsdPerHour: number, region: string): GpuPrice => ({
  usdPerGpuHour: instanceUsdPerHour / gpusPerInstance,
  instanceType,
  gpusPerInstance,
  instanceUsdPerHour,
  region,
});
type OfferRow = readonly [string, number] | readonly [string, number, Pick<InstanceOffer, 'network' | 'hostMemoryGiB'>];
const offers = (list: ReadonlyArray<OfferRow>): InstanceOffer[] =>
  list.map(([instanceType, gpus, more]) => ({ instanceType, gpus, ...(more ?? {}) }));
const GB_PER_S = 1e9;
const net = (gbps: number, gpuDirect: boolean, source: string, hostMemoryGiB?: number): Pick<InstanceOffer, 'network' | 'hostMemoryGiB'> => ({
  network: { gbps, gpuDirect, source },
  ...(hostMemoryGiB !== undefined ? { hostMemoryGiB } : {}),
});
const AWS_P4 = 'https://aws.amazon.com/ec2/instance-types/p4/';
const AWS_P5 = 'https://aws.amazon.com/ec2/instance-types/p5/';
const AWS_G4 = 'https://aws.amazon.com/ec2/instance-types/g4/';
const AWS_G5 = 'https://aws.amazon.com/ec2/instance-types/g5/';
const AWS_G6 = 'https://aws.amazon.com/ec2/instance-types/g6/';
const AWS_G6E = 'https://aws.amazon.com/ec2/instance-types/g6e/';
const GCP_A2_A3 = 'https://cloud.google.com/compute/docs/accelerator-optimized-machines';
const GCP_G2 = 'https://cloud.google.com/compute/docs/accelerator-optimized-machines#g2-vms';
const GCP_N1_GPU = 'https://cloud.google.com/compute/docs/gpus/gpu-network-bandwidth';

/** The GPU catalogue, smallest memory first. */
export const GPUS: readonly GpuSpec[] = [
  {
    id: 't4',
    name: 'Tesla T4',
    architecture: 'Turing',
    computeCapability: 7.5,
    memoryBytes: mib(15360),
    marketedMemory: '16 GB GDDR6 (15360 MiB visible with ECC = 15.0 GiB)',
    bf16DenseFlops: null,
    fp16DenseFlops: tflops(65),
    fp32Flops: tflops(8.1),
    memoryBandwidthBytesPerSecond: 320e9,
    prices: {
      aws: price('g4dn.xlarge', 1, 0.526, 'us-east-1'),
      gcp: price('n1-standard-4 + 1× nvidia-tesla-t4', 1, 0.54, 'us-central1'),
    },
    instances: {
      aws: offers([['g4dn.xlarge', 1], ['g4dn.2xlarge', 1], ['g4dn.4xlarge', 1], ['g4dn.8xlarge', 1], ['g4dn.16xlarge', 1], ['g4dn.12xlarge', 4, net(50, false, AWS_G4, 192)], ['g4dn.metal', 8, net(100, false, AWS_G4, 384)]]),
      gcp: offers([['n1-standard-4 + 1× nvidia-tesla-t4', 1], ['n1-standard-8 + 2× nvidia-tesla-t4', 2], ['n1-standard-16 + 4× nvidia-tesla-t4', 4, net(32, false, GCP_N1_GPU, 60)]]),
    },
    interconnect: { kind: 'pcie', generation: 'PCIe Gen3 x16', bytesPerSecond: 16 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/tesla-t4/ (PCIe Gen3 x16, 32 GB/s bidirectional)' },
    notes: [
      'No bf16 (compute capability 7.5): train with fp16, serve with dtype float16; bf16 configs fail on it.',
      'No FlashAttention-2 and no Marlin GPTQ kernels (vLLM falls back to slower GPTQ kernels).',
    ],
  },
  {
    id: 'a10g',
    name: 'NVIDIA A10G',
    architecture: 'Ampere',
    computeCapability: 8.6,
    memoryBytes: mib(23028),
    marketedMemory: '24 GB GDDR6 (23028 MiB visible with ECC = 22.5 GiB)',
    bf16DenseFlops: tflops(70),
    fp16DenseFlops: tflops(70),
    fp32Flops: tflops(31.2),
    memoryBandwidthBytesPerSecond: 600e9,
    prices: { aws: price('g5.xlarge', 1, 1.006, 'us-east-1') },
    instances: {
      aws: offers([['g5.xlarge', 1], ['g5.2xlarge', 1], ['g5.4xlarge', 1], ['g5.8xlarge', 1], ['g5.16xlarge', 1], ['g5.12xlarge', 4, net(40, false, AWS_G5, 192)], ['g5.24xlarge', 4, net(50, false, AWS_G5, 384)], ['g5.48xlarge', 8, net(100, false, AWS_G5, 768)]]),
      gcp: [],
    },
    interconnect: { kind: 'pcie', generation: 'PCIe Gen4 x16', bytesPerSecond: 32 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/products/a10-gpu/ (PCIe Gen4 64 GB/s bidirectional; the A10G is its AWS variant)' },
    notes: [
      'AWS-only variant of the A10; NVIDIA publishes no tensor peak for it, 70 TFLOP/s bf16 dense is the commonly quoted figure (the A10 is 125).',
    ],
  },
  {
    id: 'l4',
    name: 'NVIDIA L4',
    architecture: 'Ada Lovelace',
    computeCapability: 8.9,
    memoryBytes: mib(23034),
    marketedMemory: '24 GB GDDR6 (23034 MiB visible with ECC = 22.5 GiB)',
    bf16DenseFlops: tflops(121),
    fp16DenseFlops: tflops(121),
    fp32Flops: tflops(30.3),
    memoryBandwidthBytesPerSecond: 300e9,
    prices: {
      aws: price('g6.xlarge', 1, 0.8048, 'us-east-1'),
      gcp: price('g2-standard-4', 1, 0.7068, 'us-central1'),
    },
    instances: {
      aws: offers([['g6.xlarge', 1], ['g6.2xlarge', 1], ['g6.4xlarge', 1], ['g6.8xlarge', 1], ['g6.16xlarge', 1], ['g6.12xlarge', 4, net(40, false, AWS_G6, 192)], ['g6.24xlarge', 4, net(50, false, AWS_G6, 384)], ['g6.48xlarge', 8, net(100, false, AWS_G6, 768)]]),
      gcp: offers([['g2-standard-4', 1], ['g2-standard-8', 1], ['g2-standard-12', 1], ['g2-standard-16', 1], ['g2-standard-32', 1], ['g2-standard-24', 2], ['g2-standard-48', 4], ['g2-standard-96', 8, net(100, false, GCP_G2, 384)]]),
    },
    interconnect: { kind: 'pcie', generation: 'PCIe Gen4 x16', bytesPerSecond: 32 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/l4/ (PCIe Gen4 x16 64 GB/s bidirectional)' },
    notes: ['NVIDIA quotes 242 TFLOP/s bf16 with 2:4 sparsity; dense is half. Low memory bandwidth (300 GB/s) makes decoding slow.'],
  },
  {
    id: 'l40s',
    name: 'NVIDIA L40S',
    architecture: 'Ada Lovelace',
    computeCapability: 8.9,
    memoryBytes: mib(46068),
    marketedMemory: '48 GB GDDR6 (46068 MiB visible with ECC = 45.0 GiB)',
    bf16DenseFlops: tflops(362.05),
    fp16DenseFlops: tflops(362.05),
    fp32Flops: tflops(91.6),
    memoryBandwidthBytesPerSecond: 864e9,
    prices: { aws: price('g6e.xlarge', 1, 1.861, 'us-east-1') },
    instances: {
      aws: offers([['g6e.xlarge', 1], ['g6e.2xlarge', 1], ['g6e.4xlarge', 1], ['g6e.8xlarge', 1], ['g6e.16xlarge', 1], ['g6e.12xlarge', 4, net(100, false, AWS_G6E, 384)], ['g6e.24xlarge', 4, net(200, false, AWS_G6E, 768)], ['g6e.48xlarge', 8, net(400, false, AWS_G6E, 1536)]]),
      gcp: [],
    },
    interconnect: { kind: 'pcie', generation: 'PCIe Gen4 x16', bytesPerSecond: 32 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/l40s/ (PCIe Gen4 x16 64 GB/s bidirectional, no NVLink)' },
    notes: ['NVIDIA quotes 733 TFLOP/s bf16 with 2:4 sparsity; dense is half. PCIe only (no NVLink): tensor parallelism pays for it.'],
  },
  {
    id: 'a100-40gb',
    name: 'NVIDIA A100-SXM4-40GB',
    architecture: 'Ampere',
    computeCapability: 8.0,
    memoryBytes: mib(40960),
    marketedMemory: '40 GB HBM2 (40960 MiB = 40.0 GiB)',
    bf16DenseFlops: tflops(312),
    fp16DenseFlops: tflops(312),
    fp32Flops: tflops(19.5),
    memoryBandwidthBytesPerSecond: 1555e9,
    prices: {
      aws: price('p4d.24xlarge', 8, 21.957642, 'us-east-1'),
      gcp: price('a2-highgpu-1g', 1, 3.673477, 'us-central1'),
    },
    instances: {
      aws: offers([['p4d.24xlarge', 8, net(400, true, AWS_P4, 1152)]]),
      gcp: offers([['a2-highgpu-1g', 1], ['a2-highgpu-2g', 2], ['a2-highgpu-4g', 4], ['a2-highgpu-8g', 8, net(100, false, GCP_A2_A3, 680)], ['a2-megagpu-16g', 16, net(100, false, GCP_A2_A3, 1360)]]),
    },
    interconnect: { kind: 'nvlink', generation: 'NVLink 3 (12 links)', bytesPerSecond: 300 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/a100/ (NVLink 600 GB/s bidirectional, SXM4)' },
    notes: ['On AWS only as an 8-GPU p4d.24xlarge: a 1-GPU stage still needs that node (bin-pack stages, or use Kueue).'],
  },
  {
    id: 'a100-80gb',
    name: 'NVIDIA A100-SXM4-80GB',
    architecture: 'Ampere',
    computeCapability: 8.0,
    memoryBytes: mib(81920),
    marketedMemory: '80 GB HBM2e (81920 MiB = 80.0 GiB)',
    bf16DenseFlops: tflops(312),
    fp16DenseFlops: tflops(312),
    fp32Flops: tflops(19.5),
    memoryBandwidthBytesPerSecond: 2039e9,
    prices: {
      aws: price('p4de.24xlarge', 8, 27.44705, 'us-east-1'),
      gcp: price('a2-ultragpu-1g', 1, 5.0688, 'us-central1'),
    },
    instances: {
      aws: offers([['p4de.24xlarge', 8, net(400, true, AWS_P4, 1152)]]),
      gcp: offers([['a2-ultragpu-1g', 1], ['a2-ultragpu-2g', 2], ['a2-ultragpu-4g', 4], ['a2-ultragpu-8g', 8, net(100, false, GCP_A2_A3, 1360)]]),
    },
    interconnect: { kind: 'nvlink', generation: 'NVLink 3 (12 links)', bytesPerSecond: 300 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/a100/ (NVLink 600 GB/s bidirectional, SXM4)' },
    notes: ['On AWS only as an 8-GPU p4de.24xlarge.'],
  },
  {
    id: 'h100-80gb',
    name: 'NVIDIA H100 80GB HBM3',
    architecture: 'Hopper',
    computeCapability: 9.0,
    memoryBytes: mib(81559),
    marketedMemory: '80 GB HBM3 (81559 MiB visible = 79.6 GiB)',
    bf16DenseFlops: tflops(989.4),
    fp16DenseFlops: tflops(989.4),
    fp32Flops: tflops(66.9),
    memoryBandwidthBytesPerSecond: 3350e9,
    prices: {
      aws: price('p5.4xlarge', 1, 6.88, 'us-east-1'),
      gcp: price('a3-highgpu-8g', 8, 88.49, 'us-central1'),
    },
    instances: {
      aws: offers([['p5.4xlarge', 1, net(100, true, AWS_P5, 256)], ['p5.48xlarge', 8, net(3200, true, AWS_P5, 2048)]]),
      gcp: offers([['a3-highgpu-1g', 1], ['a3-highgpu-2g', 2], ['a3-highgpu-4g', 4], ['a3-highgpu-8g', 8, net(1000, true, GCP_A2_A3, 1872)], ['a3-megagpu-8g', 8, net(1800, true, GCP_A2_A3, 1872)], ['a3-edgegpu-8g', 8, net(800, true, GCP_A2_A3, 1872)]]),
    },
    interconnect: { kind: 'nvlink', generation: 'NVLink 4 (18 links)', bytesPerSecond: 450 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/h100/ (NVLink 900 GB/s bidirectional, SXM5)' },
    notes: ['SXM5 figures; NVIDIA quotes 1979 TFLOP/s bf16 with 2:4 sparsity.'],
  },
  {
    id: 'h200',
    name: 'NVIDIA H200',
    architecture: 'Hopper',
    computeCapability: 9.0,
    memoryBytes: mib(143771),
    marketedMemory: '141 GB HBM3e (143771 MiB visible = 140.4 GiB; "141 GB" is nearer GiB than 10^9 bytes)',
    bf16DenseFlops: tflops(989.4),
    fp16DenseFlops: tflops(989.4),
    fp32Flops: tflops(66.9),
    memoryBandwidthBytesPerSecond: 4800e9,
    prices: { aws: price('p5en.48xlarge', 8, 63.296, 'us-east-1') },
    instances: {
      aws: offers([['p5e.48xlarge', 8, net(3200, true, AWS_P5, 2048)], ['p5en.48xlarge', 8, net(3200, true, AWS_P5, 2048)]]),
      gcp: offers([['a3-ultragpu-8g', 8, net(3600, true, GCP_A2_A3, 2952)]]),
    },
    interconnect: { kind: 'nvlink', generation: 'NVLink 4 (18 links)', bytesPerSecond: 450 * GB_PER_S, source: 'https://www.nvidia.com/en-us/data-center/h200/ (NVLink 900 GB/s bidirectional, SXM)' },
    notes: [
      'GCP sells A3 Ultra mainly through reservations and DWS; no on-demand list price is carried here (pass your own in `prices`).',
    ],
  },
];

const BY_ID: ReadonlyMap<string, GpuSpec> = new Map(GPUS.map((g) => [g.id, g]));

export function isGpuId(value: string): value is GpuId {
  return BY_ID.has(value);
}

/** The catalogue entry for an id, or `undefined`. */
export function gpuById(id: string): GpuSpec | undefined {
  return BY_ID.get(id);
}

/** Whether `cloud` has a machine type with at least `count` of this GPU on one node. */
export function offeredOn(gpu: GpuSpec, cloud: Cloud, count = 1): boolean {
  return gpu.instances[cloud].some((o) => o.gpus >= count);
}

/** The smallest machine type carrying at least `count` of this GPU on `cloud`. */
export function instanceFor(gpu: GpuSpec, cloud: Cloud, count: number): InstanceOffer | undefined {
  return [...gpu.instances[cloud]].filter((o) => o.gpus >= count).sort((a, b) => a.gpus - b.gpus)[0];
}

/** Peak matmul FLOP/s for a compute dtype; `null` when the GPU cannot run it (bf16 on T4). */
export function peakFlops(gpu: GpuSpec, dtype: 'bfloat16' | 'float16' | 'float32'): number | null {
  switch (dtype) {
    case 'bfloat16':
      return gpu.bf16DenseFlops;
    case 'float16':
      return gpu.fp16DenseFlops;
    case 'float32':
      return gpu.fp32Flops;
  }
}

/** The largest machine type carrying this GPU on `cloud` (a whole node for multi-node training). */
export function largestInstance(gpu: GpuSpec, cloud: Cloud): InstanceOffer | undefined {
  return [...gpu.instances[cloud]].sort((a, b) => b.gpus - a.gpus)[0];
}
