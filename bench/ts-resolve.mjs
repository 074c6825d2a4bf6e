// `node bench/run.ts` runs TypeScript natively (Node 24 strips types), but the project's .ts files import
// each other as `./x.js` (tsc NodeNext style). This hook retries such a specifier as `.ts` when no `.js`
// file exists next to the importer.
import { registerHooks } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

registerHooks({
  resolve(specifier, context, next) {
    if (context.parentURL?.startsWith('file:') && /^\.{1,2}\/.*\.js$/.test(specifier)) {
      const asJs = new URL(specifier, context.parentURL);
      if (!existsSync(fileURLToPath(asJs))) {
        const asTs = new URL(asJs.href.slice(0, -3) + '.ts');
        if (existsSync(fileURLToPath(asTs))) return next(asTs.href, context);
      }
    }
    return next(specifier, context);
  },
});
