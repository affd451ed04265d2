// Loaded with `node --import` (test/cli/serve-bundle.test.ts): appends the URL of every module
// the ES module loader loads to the file NG_LOAD_LOG names. CommonJS modules that other CommonJS
// modules require() are not seen.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
      import { appendFileSync } from 'node:fs';
      export async function load(url, context, next) {
        if (process.env.NG_LOAD_LOG) appendFileSync(process.env.NG_LOAD_LOG, url + '\\n');
        return next(url, context);
      }
    `),
);
