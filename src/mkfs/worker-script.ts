// Where a worker thread's script is: beside the CLI bundle (dist/cjs/NAME.cjs), else the
// compiled module beside this one (dist/mkfs/NAME.js). Tests run the TypeScript sources and
// workers need JavaScript, so from src/ they get the compiled one.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerScript(name: string): URL {
  for (const file of [`./${name}.cjs`, `./${name}.js`]) {
    const local = new URL(file, import.meta.url);
    if (existsSync(fileURLToPath(local))) return local;
  }
  return new URL(`../../dist/mkfs/${name}.js`, import.meta.url);
}
