import { automation } from '@pulumi/pulumi';
import * as pulumi from '@pulumi/pulumi';
import { mkdtempSync, mkdirSync } from 'node:fs';
const dir = mkdtempSync('/tmp/h3/inline/run-');
mkdirSync(`${dir}/state`); mkdirSync(`${dir}/home`);
const cmd = await automation.PulumiCommand.get({ root: '/root/.cache/tunepipe/pulumi-cli/v3.248.0' });
const env = { PULUMI_SKIP_UPDATE_CHECK: 'true', PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true', PULUMI_CONFIG_PASSPHRASE: 'x', PULUMI_HOME: `${dir}/home`, PULUMI_BACKEND_URL: `file://${dir}/state` };
const stack = await automation.LocalWorkspace.createOrSelectStack({ projectName: 'inline-probe', stackName: 'dev', program: async () => {
  const cfg = new pulumi.Config();
  return { greeting: `hello ${cfg.require('who')}`, secret: cfg.requireSecret('s') };
} }, { workDir: `${dir}`, pulumiHome: `${dir}/home`, pulumiCommand: cmd, envVars: env, secretsProvider: 'passphrase', projectSettings: { name: 'inline-probe', runtime: 'nodejs', backend: { url: `file://${dir}/state` } } });
await stack.setAllConfig({ 'inline-probe:who': { value: 'world' }, 'inline-probe:s': { value: 'plaintext-secret-123', secret: true } });
const t = Date.now();
const r = await stack.up({ onOutput: (s) => process.stdout.write(s) });
console.log('UP', r.summary.result, JSON.stringify(r.outputs), Date.now() - t, 'ms');
const r2 = await stack.up();
console.log('UP2', JSON.stringify(r2.summary.resourceChanges));
const d = await stack.destroy();
console.log('DESTROY', d.summary.result);
