// Row d)'s second floor (bench/run.ts, bundled by esbuild like the CLI): load-programs.mjs after importing and
// using, once each, the three libraries every kmm-worker command loads: commander parses the command line, pino
// makes the logger, yaml reads the config.
//   node load-programs-libraries.bundle.mjs <config.yaml> <modprobe> <dir> <module> <ko>
// (run with NODE_COMPILE_CACHE set to the dir bin/kmm-worker.js uses, so that both start from a compile cache)
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import pino from 'pino';
import { parseDocument } from 'yaml';
import { runLoadPrograms } from './run-programs.mjs';

const program = new Command().argument('<config>').argument('<programs...>').option('--log-level <level>', '', 'warn');
program.parse(process.argv);
const log = pino({ level: program.opts().logLevel }, process.stderr);
const config = parseDocument(readFileSync(program.args[0], 'utf8'), { uniqueKeys: true }).toJS();
log.info({ config }, 'config read');
await runLoadPrograms(program.args.slice(1));
