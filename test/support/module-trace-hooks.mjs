// Module resolve hook (runs on the loader thread): appends every resolved URL to MF_MODULE_TRACE.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (process.env.MF_MODULE_TRACE) appendFileSync(process.env.MF_MODULE_TRACE, `${result.url}\n`);
  return result;
}
