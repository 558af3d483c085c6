// provider `aws`: an EKS cluster built from @pulumi/aws resources (not @pulumi/eks, whose
// components run inside a provider plugin and are opaque to tests), a CPU node group for the
// platform, GPU node groups that scale from zero, EFS for artifacts and the cluster autoscaler.
import * as pulumi from '@pulumi/pulumi';
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import { GPU_RESOURCE, GPU_TAINT, LABELS } from '@tunepipe/core/labels';
import type { AwsConfig, AwsGpuGroup } from './config.ts';
import { gpuNodeLabels } from './platform.ts';
import { CHARTS } from './versions.ts';

/** StorageClass the stack creates on EFS for the artifacts volume. */
export const EFS_STORAGE_CLASS = 'tunepipe-efs';
const CLUSTER_AUTOSCALER_SA = 'cluster-autoscaler';
const EFS_CSI_CONTROLLER_SA = 'efs-csi-controller-sa';

/**
 * Tags the cluster autoscaler reads from an Auto Scaling group to build a node template when the
 * group has no nodes yet: without them it cannot know that a new node would carry the GPU label,
 * the taint and `nvidia.com/gpu`, and it never scales a GPU group up from zero.
 */
export function autoscalerNodeTemplateTags(group: AwsGpuGroup): Record<string, string> {
  const prefix = 'k8s.io/cluster-autoscaler/node-template';
  const labels = Object.entries(gpuNodeLabels(group.gpu)).map(([k, v]) => [`${prefix}/label/${k}`, v] as const);
  return {
    ...Object.fromEntries(labels),
    [`${prefix}/taint/${GPU_TAINT.key}`]: `${GPU_TAINT.value}:${GPU_TAINT.effect}`,
    [`${prefix}/resources/${GPU_RESOURCE}`]: String(group.gpusPerNode),
  };
}

/** Auto-discovery tags (EKS also puts them on the ASGs of managed node groups). */
export function autoscalerDiscoveryTags(clusterName: string): Record<string, string> {
  return { 'k8s.io/cluster-autoscaler/enabled': 'true', [`k8s.io/cluster-autoscaler/${clusterName}`]: 'owned' };
}

/** The i-th of eight equal subnets of a VPC CIDR (one per availability zone). */
export function subnetCidr(vpcCidr: string, index: number): string {
  const [address, prefixText] = vpcCidr.split('/');
  const octets = (address ?? '').split('.').map(Number);
  const base = octets.reduce((acc, o) => acc * 256 + (o ?? 0), 0);
  const prefix = Number(prefixText) + 3;
  const size = 2 ** (32 - prefix);
  const start = base + index * size;
  const dotted = [24, 16, 8, 0].map((shift) => Math.floor(start / 2 ** shift) % 256).join('.');
  return `${dotted}/${prefix}`;
}

function assumeRolePolicy(service: string, actions: readonly string[] = ['sts:AssumeRole']): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: actions }],
  });
}

const POD_IDENTITY_TRUST = assumeRolePolicy('pods.eks.amazonaws.com', ['sts:AssumeRole', 'sts:TagSession']);

export interface EksClusterArgs {
  readonly config: AwsConfig;
}

/** An EKS cluster ready for the tunepipe platform; `provider` deploys into it. */
export class EksCluster extends pulumi.ComponentResource {
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly storageClass: pulumi.Output<string>;
  readonly clusterName: pulumi.Output<string>;

  constructor(name: string, args: EksClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('tunepipe:cluster:EksCluster', name, {}, opts);
    const c = args.config;
    const awsProvider = new aws.Provider(
      `${name}-aws`,
      { region: c.region as aws.Region, defaultTags: { tags: { 'tunepipe.dev/cluster': c.clusterName, 'managed-by': 'pulumi' } } },
      { parent: this },
    );
    const o = { parent: this, provider: awsProvider };

    // --- network -----------------------------------------------------------------------------
    let subnetIds: pulumi.Input<string>[];
    let vpcId: pulumi.Input<string>;
    if (c.network.kind === 'create') {
      const net = c.network;
      const vpc = new aws.ec2.Vpc(`${name}-vpc`, { cidrBlock: net.vpcCidr, enableDnsHostnames: true, enableDnsSupport: true, tags: { Name: c.clusterName } }, o);
      const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: { Name: c.clusterName } }, o);
      const routes = new aws.ec2.RouteTable(`${name}-public`, { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }], tags: { Name: `${c.clusterName}-public` } }, o);
      // Public subnets without NAT gateways: a NAT gateway costs ~$33/month per zone even when
      // every GPU group is at zero; nodes get public IPs but accept traffic only from the cluster.
      subnetIds = net.availabilityZones.map((zone, i) => {
        const subnet = new aws.ec2.Subnet(
          `${name}-public-${zone}`,
          {
            vpcId: vpc.id,
            availabilityZone: zone,
            cidrBlock: subnetCidr(net.vpcCidr, i),
            mapPublicIpOnLaunch: true,
            tags: { Name: `${c.clusterName}-${zone}`, 'kubernetes.io/role/elb': '1', [`kubernetes.io/cluster/${c.clusterName}`]: 'shared' },
          },
          o,
        );
        new aws.ec2.RouteTableAssociation(`${name}-public-${zone}`, { subnetId: subnet.id, routeTableId: routes.id }, o);
        return subnet.id;
      });
      vpcId = vpc.id;
    } else {
      subnetIds = [...c.network.subnetIds];
      vpcId = aws.ec2.getSubnetOutput({ id: c.network.subnetIds[0] ?? '' }, { parent: this, provider: awsProvider }).vpcId;
    }

    // --- control plane -----------------------------------------------------------------------
    const clusterRole = new aws.iam.Role(`${name}-cluster`, { assumeRolePolicy: assumeRolePolicy('eks.amazonaws.com') }, o);
    const clusterPolicy = new aws.iam.RolePolicyAttachment(`${name}-cluster`, { role: clusterRole.name, policyArn: 'arn:aws:iam::aws:policy/AmazonEKSClusterPolicy' }, o);
    const cluster = new aws.eks.Cluster(
      `${name}-eks`,
      {
        name: c.clusterName,
        version: c.kubernetesVersion,
        roleArn: clusterRole.arn,
        vpcConfig: { subnetIds, endpointPublicAccess: true, endpointPrivateAccess: true },
        // API access entries: managed node groups register themselves, and whoever runs
        // `pulumi up` becomes cluster admin (that identity is what the kubeconfig below uses).
        accessConfig: { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: true },
      },
      { ...o, dependsOn: [clusterPolicy] },
    );
    this.clusterName = cluster.name;

    // --- node groups -------------------------------------------------------------------------
    const nodeRole = new aws.iam.Role(`${name}-node`, { assumeRolePolicy: assumeRolePolicy('ec2.amazonaws.com') }, o);
    const nodePolicies = ['AmazonEKSWorkerNodePolicy', 'AmazonEKS_CNI_Policy', 'AmazonEC2ContainerRegistryReadOnly'].map(
      (policy) => new aws.iam.RolePolicyAttachment(`${name}-node-${policy}`, { role: nodeRole.name, policyArn: `arn:aws:iam::aws:policy/${policy}` }, o),
    );
    const afterNodeRole = { ...o, dependsOn: nodePolicies };
    const cpuGroup = new aws.eks.NodeGroup(
      `${name}-cpu`,
      {
        clusterName: cluster.name,
        nodeGroupName: 'cpu',
        nodeRoleArn: nodeRole.arn,
        subnetIds,
        amiType: 'AL2023_x86_64_STANDARD',
        instanceTypes: [...c.cpuNodes.instanceTypes],
        diskSize: c.cpuNodes.diskSizeGb,
        scalingConfig: { minSize: c.cpuNodes.minNodes, maxSize: c.cpuNodes.maxNodes, desiredSize: c.cpuNodes.minNodes },
        tags: autoscalerDiscoveryTags(c.clusterName),
      },
      // The autoscaler owns desiredSize once the group exists; `pulumi up` must not reset it.
      { ...afterNodeRole, ignoreChanges: ['scalingConfig.desiredSize'] },
    );
    const gpuGroups = c.gpuNodeGroups.map((g) => {
      const templateTags = autoscalerNodeTemplateTags(g);
      const group = new aws.eks.NodeGroup(
        `${name}-${g.name}`,
        {
          clusterName: cluster.name,
          nodeGroupName: g.name,
          nodeRoleArn: nodeRole.arn,
          subnetIds,
          // EKS-optimized accelerated AL2023 image: NVIDIA driver and container toolkit preinstalled.
          amiType: 'AL2023_x86_64_NVIDIA',
          instanceTypes: [...g.instanceTypes],
          capacityType: g.capacityType,
          diskSize: g.diskSizeGb,
          scalingConfig: { minSize: g.minNodes, maxSize: g.maxNodes, desiredSize: g.minNodes },
          labels: {
            ...gpuNodeLabels(g.gpu),
            // The autoscaler's AWS GPU label: it then waits for the device plugin before judging a new node.
            'k8s.amazonaws.com/accelerator': g.gpu,
          },
          taints: [{ key: GPU_TAINT.key, value: GPU_TAINT.value, effect: 'NO_SCHEDULE' }],
          tags: { ...autoscalerDiscoveryTags(c.clusterName), ...templateTags },
        },
        { ...afterNodeRole, ignoreChanges: ['scalingConfig.desiredSize'] },
      );
      // Node group tags stay on the EKS resource; the autoscaler reads the Auto Scaling group's.
      const asgName = group.resources.apply((r) => r[0]?.autoscalingGroups[0]?.name ?? '');
      for (const [key, value] of Object.entries(templateTags)) {
        new aws.autoscaling.Tag(
          `${name}-${g.name}-${key.split('/').slice(3).join('-').replace(/[^a-zA-Z0-9-]/g, '-')}`,
          { autoscalingGroupName: asgName, tag: { key, value, propagateAtLaunch: false } },
          o,
        );
      }
      return group;
    });

    // --- add-ons with AWS permissions (EKS Pod Identity, no OIDC provider to manage) ---------
    const podIdentityAgent = new aws.eks.Addon(
      `${name}-pod-identity-agent`,
      { clusterName: cluster.name, addonName: 'eks-pod-identity-agent', resolveConflictsOnCreate: 'OVERWRITE' },
      { ...o, dependsOn: [cpuGroup] },
    );
    const efsCsiRole = new aws.iam.Role(`${name}-efs-csi`, { assumeRolePolicy: POD_IDENTITY_TRUST }, o);
    const efsCsiPolicy = new aws.iam.RolePolicyAttachment(
      `${name}-efs-csi`,
      { role: efsCsiRole.name, policyArn: 'arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy' },
      o,
    );
    const efsCsi = new aws.eks.Addon(
      `${name}-efs-csi`,
      {
        clusterName: cluster.name,
        addonName: 'aws-efs-csi-driver',
        // The version EKS marks default for this Kubernetes version: pinned by the cluster version.
        addonVersion: aws.eks.getAddonVersionOutput({ addonName: 'aws-efs-csi-driver', kubernetesVersion: cluster.version, mostRecent: false }, { parent: this, provider: awsProvider }).version,
        podIdentityAssociations: [{ roleArn: efsCsiRole.arn, serviceAccount: EFS_CSI_CONTROLLER_SA }],
        resolveConflictsOnCreate: 'OVERWRITE',
      },
      { ...o, dependsOn: [podIdentityAgent, efsCsiPolicy, cpuGroup] },
    );

    // --- EFS for the artifacts volume --------------------------------------------------------
    const efs = new aws.efs.FileSystem(
      `${name}-artifacts`,
      { encrypted: true, performanceMode: 'generalPurpose', throughputMode: 'elastic', tags: { Name: `${c.clusterName}-artifacts` } },
      o,
    );
    const efsSg = new aws.ec2.SecurityGroup(`${name}-efs`, { vpcId, description: `NFS from ${c.clusterName} nodes to the artifacts file system` }, o);
    new aws.vpc.SecurityGroupIngressRule(
      `${name}-efs-nfs`,
      { securityGroupId: efsSg.id, referencedSecurityGroupId: cluster.vpcConfig.clusterSecurityGroupId, ipProtocol: 'tcp', fromPort: 2049, toPort: 2049 },
      o,
    );
    const mountTargets = subnetIds.map(
      (subnetId, i) => new aws.efs.MountTarget(`${name}-artifacts-${i}`, { fileSystemId: efs.id, subnetId, securityGroups: [efsSg.id] }, o),
    );

    // --- Kubernetes access -------------------------------------------------------------------
    this.kubeconfig = pulumi.secret(
      pulumi.all([cluster.name, cluster.endpoint, cluster.certificateAuthority]).apply(([clusterName, endpoint, ca]) =>
        eksKubeconfig(clusterName, endpoint, ca.data ?? '', c.region),
      ),
    );
    // Platform pods need somewhere to run: the provider (and so everything deployed through it)
    // waits for the CPU node group.
    this.provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: this.kubeconfig, enableServerSideApply: true }, { parent: this, dependsOn: [cpuGroup] });
    const k = { parent: this, provider: this.provider };

    const sc = new k8s.storage.v1.StorageClass(
      `${name}-efs`,
      {
        metadata: { name: EFS_STORAGE_CLASS },
        provisioner: 'efs.csi.aws.com',
        // One EFS access point per claim; it maps every client to one POSIX owner, so non-root
        // stage pods with any UID can write.
        parameters: { provisioningMode: 'efs-ap', fileSystemId: efs.id, directoryPerms: '770', basePath: '/tunepipe' },
        // Trained adapters and merged models outlive a deleted claim; `pulumi destroy` removes the file system itself.
        reclaimPolicy: 'Retain',
        volumeBindingMode: 'Immediate',
      },
      { ...k, dependsOn: [efsCsi, ...mountTargets] },
    );
    this.storageClass = sc.metadata.name;

    // --- cluster autoscaler ------------------------------------------------------------------
    const autoscalerRole = new aws.iam.Role(`${name}-cluster-autoscaler`, { assumeRolePolicy: POD_IDENTITY_TRUST }, o);
    new aws.iam.RolePolicy(
      `${name}-cluster-autoscaler`,
      { role: autoscalerRole.id, policy: clusterAutoscalerPolicy(c.clusterName) },
      o,
    );
    const autoscalerIdentity = new aws.eks.PodIdentityAssociation(
      `${name}-cluster-autoscaler`,
      { clusterName: cluster.name, namespace: 'kube-system', serviceAccount: CLUSTER_AUTOSCALER_SA, roleArn: autoscalerRole.arn },
      { ...o, dependsOn: [podIdentityAgent] },
    );
    new k8s.helm.v3.Release(
      `${name}-cluster-autoscaler`,
      {
        name: 'cluster-autoscaler',
        namespace: 'kube-system',
        chart: CHARTS.clusterAutoscaler.chart,
        version: c.versions.clusterAutoscaler,
        repositoryOpts: { repo: CHARTS.clusterAutoscaler.repo },
        cleanupOnFail: true,
        maxHistory: 5,
        timeout: 600,
        values: {
          cloudProvider: 'aws',
          awsRegion: c.region,
          autoDiscovery: { clusterName: cluster.name },
          image: { tag: c.clusterAutoscalerImage },
          rbac: { serviceAccount: { name: CLUSTER_AUTOSCALER_SA } },
          extraArgs: {
            'balance-similar-node-groups': true,
            expander: 'least-waste',
            // Stage pods mount an emptyDir for /dev/shm; by default that would pin idle GPU nodes.
            'skip-nodes-with-local-storage': false,
            'scale-down-unneeded-time': '10m',
            'scale-down-delay-after-add': '10m',
          },
        },
      },
      { ...k, dependsOn: [autoscalerIdentity, ...gpuGroups] },
    );

    this.registerOutputs({ kubeconfig: this.kubeconfig, storageClass: this.storageClass, clusterName: this.clusterName });
  }
}

/** Kubeconfig that authenticates with `aws eks get-token` (the AWS CLI of whoever runs kubectl). */
export function eksKubeconfig(clusterName: string, endpoint: string, caData: string, region: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster: { server: endpoint, 'certificate-authority-data': caData } }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: clusterName } }],
    'current-context': clusterName,
    users: [
      {
        name: clusterName,
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            command: 'aws',
            args: ['eks', 'get-token', '--cluster-name', clusterName, '--region', region, '--output', 'json'],
            interactiveMode: 'Never',
          },
        },
      },
    ],
  });
}

/** What the autoscaler may do: read ASGs/instance types anywhere, resize only this cluster's groups. */
export function clusterAutoscalerPolicy(clusterName: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: [
          'autoscaling:DescribeAutoScalingGroups',
          'autoscaling:DescribeAutoScalingInstances',
          'autoscaling:DescribeLaunchConfigurations',
          'autoscaling:DescribeScalingActivities',
          'autoscaling:DescribeTags',
          'ec2:DescribeImages',
          'ec2:DescribeInstanceTypes',
          'ec2:DescribeLaunchTemplateVersions',
          'ec2:GetInstanceTypesFromInstanceRequirements',
          'eks:DescribeNodegroup',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: ['autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
        Resource: '*',
        Condition: { StringEquals: { [`aws:ResourceTag/k8s.io/cluster-autoscaler/${clusterName}`]: 'owned' } },
      },
    ],
  });
}
