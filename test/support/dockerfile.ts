import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Instruction {
  /** Upper-case instruction name, e.g. RUN. */
  op: string;
  /** The rest of the line, whitespace runs collapsed to one space. */
  args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
export function dockerfileInstructions(dockerfile: string): Instruction[] {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() && !line.trimStart().startsWith('#'))
    .map((line) => {
      const [op, ...rest] = line.trim().split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

/** Every file the build takes from the context: COPY sources (JSON form) and RUN bind-mount sources. */
export function contextSources(ins: Instruction[]): string[] {
  const sources = new Set<string>();
  for (const i of ins) {
    if (i.op === 'COPY' && !i.args.startsWith('--from')) for (const source of (JSON.parse(i.args) as string[]).slice(0, -1)) sources.add(source);
    if (i.op === 'RUN') for (const m of i.args.matchAll(/--mount=type=bind,source=([^,\s]+)/g)) sources.add(m[1]!);
  }
  return [...sources].sort();
}

/** The context files `.dockerignore` lets through (it ignores `*` and names each file with `!`). */
export async function dockerignoreAllowed(context: string): Promise<string[]> {
  const lines = (await readFile(join(context, '.dockerignore'), 'utf8')).split('\n');
  return lines.filter((line) => line.startsWith('!')).map((line) => line.slice(1));
}
