// Reads tap's raw TAP stream on stdin, echoes it, and ends with one line "N passed, N failed".
// Counts leaf test points at any depth; a subtest that failed without a failing leaf (a crash, a timeout,
// a plan mismatch) counts as one failure of its own.
import { Parser } from 'tap-parser';

let passed = 0;
let failed = 0;
let skipped = 0;

function attach(parser) {
  let lastChild = null;
  parser.on('child', (child) => {
    lastChild = child;
    attach(child);
  });
  parser.on('assert', (r) => {
    const child = lastChild;
    lastChild = null;
    if (child) {
      if (!r.ok && !child.hadFailure) failed++;
      if (!r.ok) parser.hadFailure = true;
      return;
    }
    if (r.skip || r.todo) skipped++;
    else if (r.ok) passed++;
    else {
      failed++;
      parser.hadFailure = true;
    }
  });
  parser.on('bailout', () => {
    if (!parser.hadFailure) failed++;
    parser.hadFailure = true;
  });
}

const root = new Parser();
attach(root);
process.stdin.on('data', (d) => process.stdout.write(d));
process.stdin.pipe(root);
root.on('complete', () => {
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
});
