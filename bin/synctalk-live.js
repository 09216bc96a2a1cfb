#!/usr/bin/env node
// The package bin. In a checkout of the repository it runs the TypeScript sources through tsx (no build
// step); in the installed package, which ships only the compiled JS, it runs dist/ (npm run build).
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli.ts', import.meta.url);
let cli;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(sources.href);
} else {
  cli = await import('../dist/cli.js');
}
process.exitCode = await cli.main(process.argv.slice(2));
