#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm run build`, which `npm ci` and `npm install` run (prepare).
const entry = new URL('../dist/cli/main.js', import.meta.url);
let main;
try {
  ({ main } = await import(entry.href));
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || error?.url !== entry.href) throw error;
  process.stderr.write(`modelfetch: the CLI is not built (${entry.pathname} is missing).\n  hint: run \`npm ci\` or \`npm run build\` in ${new URL('..', import.meta.url).pathname}\n`);
  process.exit(2);
}
process.exitCode = await main(process.argv.slice(2));
