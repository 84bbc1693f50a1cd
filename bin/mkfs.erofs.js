#!/usr/bin/env node
// The CLI as one CommonJS bundle (npm run build): Node loads it ~0.1 s faster than the
// ES modules under dist/, most of it in resolving and linking them.
import { createRequire } from 'node:module';

const { main } = createRequire(import.meta.url)('../dist/cjs/mkfs.cjs');
process.exitCode = await main(process.argv.slice(2));
