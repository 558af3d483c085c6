import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GPU_TAINT, LABELS } from '@tunepipe/core/labels';
import { subnetCidr } from '../src/aws.ts';
import { CHARTS } from '../src/versions.ts';
import { AWS_CONFIG, type MockCloudDouble, SECRETS, isSecretValue, runStack } from './mock-cloud.ts';

let cloud: MockCloudDouble;
let resolved: Record<string, unknown>;
before(async () => {
  ({ cloud, resolved } = await runStack({ ...AWS_CONFIG }, { ...SECRETS }));
});

const nodeGroup = (name: string) => cloud.one('aws:eks/nodeGroup:NodeGroup', `tunepipe-test-${name}`).inputs;

test('EKS cluster: configured version, API access entries, subnets in two zones', () => {
  const eks = cloud.one('aws:eks/cluster:Cluster').inputs;
  assert.equal(eks['name'], 'tunepipe-test');
  assert.equal(eks['version'], '1.34');
  assert.deepEqual(eks['accessConfig'], { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: true });
  assert.equal(eks['vpcConfig'].subnetIds.length, 2);
  const subnets = cloud.ofType('aws:ec2/subnet:Subnet').map((s) => [s.inputs['availabilityZone'], s.inputs['cidrBlock']]);
  assert.deepEqual(subnets.sort(), [
    ['us-east-1a', '10.0.0.0/19'],
    ['us-east-1b', '10.0.32.0/19'],
  ]);
});

test('GPU node groups: NVIDIA AMI, instance types from config, scale from 0, GPU taint and labels', () => {
  for (const [name, gpu, types, max, capacity] of [
    ['a10g', 'a10g', ['g5.2xlarge', 'g5.4xlarge'], 3, 'ON_DEMAND'],
    ['h100', 'h100-80gb', ['p5.48xlarge'], 1, 'SPOT'],
  ] as const) {
    const g = nodeGroup(name);
    assert.equal(g['amiType'], 'AL2023_x86_64_NVIDIA');
    assert.deepEqual(g['instanceTypes'], types);
    assert.equal(g['capacityType'], capacity);
    assert.deepEqual(g['scalingConfig'], { minSize: 0, maxSize: max, desiredSize: 0 });
    assert.deepEqual(g['taints'], [{ key: GPU_TAINT.key, value: GPU_TAINT.value, effect: 'NO_SCHEDULE' }]);
    assert.equal(g['labels'][LABELS.gpuType], gpu);
    assert.equal(g['labels'][LABELS.gpuNode], 'true');
  }
});

test('CPU node group: standard AMI, never tainted, at least one node for the platform', () => {
  const cpu = nodeGroup('cpu');
  assert.equal(cpu['amiType'], 'AL2023_x86_64_STANDARD');
  assert.equal(cpu['taints'], undefined);
  assert.deepEqual(cpu['scalingConfig'], { minSize: 1, maxSize: 3, desiredSize: 1 });
});

test('autoscaler node-template tags reach the Auto Scaling group of every GPU group (scale from zero)', () => {
  const tags = cloud.ofType('aws:autoscaling/tag:Tag').map((t) => [t.inputs['autoscalingGroupName'], t.inputs['tag'].key, t.inputs['tag'].value, t.inputs['tag'].propagateAtLaunch]);
  const expected = (asg: string, gpu: string, count: string) => [
    [asg, `k8s.io/cluster-autoscaler/node-template/label/${LABELS.gpuType}`, gpu, false],
    [asg, `k8s.io/cluster-autoscaler/node-template/label/${LABELS.gpuNode}`, 'true', false],
    [asg, 'k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu', 'present:NoSchedule', false],
    [asg, 'k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu', count, false],
  ];
  const sort = (rows: unknown[][]) => rows.map((r) => JSON.stringify(r)).sort();
  assert.deepEqual(sort(tags), sort([...expected('eks-a10g-0a1b2c', 'a10g', '1'), ...expected('eks-h100-0a1b2c', 'h100-80gb', '8')]));
  // The same tags, plus auto-discovery, are on the node groups themselves.
  const h100Tags = nodeGroup('h100')['tags'];
  assert.equal(h100Tags['k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu'], '8');
  assert.equal(h100Tags['k8s.io/cluster-autoscaler/enabled'], 'true');
  assert.equal(h100Tags['k8s.io/cluster-autoscaler/tunepipe-test'], 'owned');
});

test('cluster autoscaler: pinned chart, image matching the cluster version, AWS rights via Pod Identity scoped to this cluster', () => {
  const ca = cloud.release('cluster-autoscaler');
  assert.equal(ca.inputs['version'], CHARTS.clusterAutoscaler.version);
  assert.equal(ca.inputs['repositoryOpts'].repo, 'https://kubernetes.github.io/autoscaler');
  assert.equal(ca.inputs['values'].image.tag, 'v1.34.5');
  assert.equal(ca.inputs['values'].autoDiscovery.clusterName, 'tunepipe-test');
  assert.equal(ca.inputs['values'].extraArgs['skip-nodes-with-local-storage'], false);
  const association = cloud.one('aws:eks/podIdentityAssociation:PodIdentityAssociation').inputs;
  assert.equal(association['serviceAccount'], ca.inputs['values'].rbac.serviceAccount.name);
  assert.equal(association['namespace'], ca.inputs['namespace']);
  const policy = JSON.parse(cloud.one('aws:iam/rolePolicy:RolePolicy').inputs['policy']);
  const write = policy.Statement.find((s: { Action: string[] }) => s.Action.includes('autoscaling:SetDesiredCapacity'));
  assert.deepEqual(write.Condition, { StringEquals: { 'aws:ResourceTag/k8s.io/cluster-autoscaler/tunepipe-test': 'owned' } });
});

test('artifacts on EFS: encrypted file system, mount target per subnet, NFS only from the cluster, EFS StorageClass for the PVC', () => {
  assert.equal(cloud.one('aws:efs/fileSystem:FileSystem').inputs['encrypted'], true);
  assert.equal(cloud.ofType('aws:efs/mountTarget:MountTarget').length, 2);
  const ingress = cloud.one('aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule').inputs;
  assert.deepEqual([ingress['fromPort'], ingress['toPort'], ingress['referencedSecurityGroupId']], [2049, 2049, 'sg-0cluster']);
  const sc = cloud.one('kubernetes:storage.k8s.io/v1:StorageClass').inputs;
  assert.equal(sc['provisioner'], 'efs.csi.aws.com');
  assert.equal(sc['parameters'].fileSystemId, 'tunepipe-test-artifacts-id');
  const pvc = cloud.one('kubernetes:core/v1:PersistentVolumeClaim').inputs;
  assert.equal(pvc['spec'].storageClassName, sc['metadata'].name);
  assert.equal(resolved['storageClass'], 'tunepipe-efs');
  const efsAddon = cloud.ofType('aws:eks/addon:Addon').find((a) => a.inputs['addonName'] === 'aws-efs-csi-driver');
  assert.equal(efsAddon?.inputs['addonVersion'], 'v2.1.10-eksbuild.1');
  assert.equal(efsAddon?.inputs['podIdentityAssociations'][0].serviceAccount, 'efs-csi-controller-sa');
});

test('NVIDIA device plugin and DCGM exporter are installed (the EKS NVIDIA AMI ships only driver and toolkit)', () => {
  assert.equal(cloud.release('nvidia-device-plugin').inputs['version'], CHARTS.nvidiaDevicePlugin.version);
  assert.equal(cloud.release('dcgm-exporter').inputs['version'], CHARTS.dcgmExporter.version);
});

test('every AWS resource uses the stack\'s regional provider, every Kubernetes resource the new cluster\'s', () => {
  for (const r of cloud.registrations.filter((r) => r.custom && !r.type.startsWith('pulumi:providers:'))) {
    const expected = r.type.startsWith('aws:') ? 'tunepipe-test-aws' : 'tunepipe-test-k8s';
    assert.match(r.provider ?? '(default provider)', new RegExp(`::${expected}::`), `${r.type} ${r.name}`);
  }
  assert.equal(cloud.one('pulumi:providers:aws').inputs['region'], 'us-east-1');
});

test('kubeconfig: exec through `aws eks get-token` for this cluster and region; the provider gets it as a secret', () => {
  const kubeconfig = JSON.parse(resolved['kubeconfig'] as string);
  assert.deepEqual(kubeconfig.users[0].user.exec.args, ['eks', 'get-token', '--cluster-name', 'tunepipe-test', '--region', 'us-east-1', '--output', 'json']);
  assert.equal(kubeconfig.clusters[0].cluster.server, 'https://0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com');
  const provider = cloud.one('pulumi:providers:kubernetes').inputs;
  assert.ok(isSecretValue(provider['kubeconfig']), 'kubeconfig must reach the provider wrapped as a secret');
});

test('existing subnets: no VPC is created; the VPC is looked up for the EFS security group', async () => {
  const { cloud: c } = await runStack({ ...AWS_CONFIG, aws: { subnetIds: ['subnet-1', 'subnet-2', 'subnet-3'] } }, { ...SECRETS });
  assert.equal(c.ofType('aws:ec2/vpc:Vpc').length, 0);
  assert.equal(c.ofType('aws:ec2/subnet:Subnet').length, 0);
  assert.deepEqual(c.one('aws:eks/cluster:Cluster').inputs['vpcConfig'].subnetIds, ['subnet-1', 'subnet-2', 'subnet-3']);
  assert.equal(c.one('aws:ec2/securityGroup:SecurityGroup').inputs['vpcId'], 'vpc-0existing');
  assert.equal(c.ofType('aws:efs/mountTarget:MountTarget').length, 3);
});

test('subnetCidr splits a VPC into eighths', () => {
  assert.equal(subnetCidr('10.0.0.0/16', 0), '10.0.0.0/19');
  assert.equal(subnetCidr('10.0.0.0/16', 7), '10.0.224.0/19');
  assert.equal(subnetCidr('172.16.0.0/12', 1), '172.18.0.0/15');
  assert.equal(subnetCidr('192.168.16.0/20', 3), '192.168.22.0/23');
});
