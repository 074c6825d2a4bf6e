// Row d)'s floor (bench/run.ts): Node starts, runs the load's programs (run-programs.mjs) and nothing else, exits.
//   node load-programs.mjs <modprobe> <dir> <module> <ko>
import { runLoadPrograms } from './run-programs.mjs';

await runLoadPrograms(process.argv.slice(2));
