export { distDir, gitopsOptions, renderFor, type Flavor } from './synth.ts';
export { UserError, renderError } from './errors.ts';
export { buildProgram, main } from './main.ts';
