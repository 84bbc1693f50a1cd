// commander loads node:child_process as it starts, for executable subcommands, which these
// commands do not have: 5-10 ms of every run. The command bundles resolve node:child_process
// to this module instead (package.json, "bundle"), which loads the real one only when called.

import type * as ChildProcess from 'node:child_process';
import { childProcess } from '../builtins.js';

export const spawn = ((...args: Parameters<typeof ChildProcess.spawn>) => childProcess().spawn(...args)) as typeof ChildProcess.spawn;
