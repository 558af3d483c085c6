// The real Pulumi engine for the test:real tier, built from Go modules (draft: CLI only).
import { join } from 'node:path';
import { buildGoModule, ensure, pins } from './lib.mjs';

export const pulumiVersion = pins.go.pulumi;

export function buildCli() {
  return ensure('pulumi-cli', pulumiVersion, (dir) => {
    buildGoModule({
      name: 'pulumi-cli',
      module: 'github.com/pulumi/pulumi/pkg/v3',
      version: pulumiVersion,
      packages: ['./cmd/pulumi'],
      outDir: join(dir, 'bin'),
      ldflags: `-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${pulumiVersion}`,
    });
  });
}

export async function install() {
  const cli = buildCli();
  return { pulumi: join(cli, 'bin', 'pulumi') };
}
