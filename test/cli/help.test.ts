import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildProgram, main, type CliIo } from '../../src/cli/main.js';

/** The help a newcomer reads: examples for every command, one style of description, defaults shown once and as they are typed. */

async function help(args: string[]): Promise<string> {
  let out = '';
  const stdout = new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) });
  const io: CliIo = { stdout, stderr: stdout, env: {} };
  expect(await main([...args, '--help'], io)).toBe(0);
  return out;
}

const commands = buildProgram({ stdout: process.stdout, stderr: process.stderr, env: {} }).commands.map((c) => ({ name: c.name(), description: c.description() }));

describe('help', () => {
  it('lists commands whose descriptions all start with a capital letter', () => {
    expect(commands.length).toBeGreaterThanOrEqual(13);
    for (const { name, description } of commands) expect(description, name).toMatch(/^[A-Z]/);
  });

  it.each(commands.map((c) => c.name))('%s --help ends with examples of that very command', async (name) => {
    const text = await help([name]);
    const [, section] = text.split('\nExamples:\n');
    expect(section, `${name} has no Examples section`).toBeDefined();
    const lines = section!.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    for (const line of lines) expect(line).toMatch(new RegExp(`^ {2}(\\S+=\\$\\()?modelfetch ${name}( |$)`));
  });

  it('the top-level help has examples too', async () => {
    expect(await help([])).toContain('\nExamples:\n  modelfetch pull org/name');
  });

  it('prints no default twice and numbers as numbers', async () => {
    for (const { name } of commands) {
      const flat = (await help([name])).replace(/\s+/g, ' ');
      expect(flat, name).not.toMatch(/\(default[^()]*\) \(default:/);
      expect(flat, name).not.toMatch(/\(default: "\d+"\)/);
    }
    const run = (await help(['run'])).replace(/\s+/g, ' ');
    expect(run).toContain('between health checks (default: 5000)');
    expect(run).toContain('restarts allowed before giving up (default: 3)');
  });

  it('run rejects a count that is not a whole number as a usage error (exit 2)', async () => {
    let err = '';
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => ((err += chunk.toString()), done()) });
    expect(await main(['run', '--restarts', 'many', '--', 'true'], { stdout: sink, stderr: sink, env: {} })).toBe(2);
    expect(err).toContain('--restarts must be an integer ≥ 0, got "many" [ERR_USAGE]');
  });
});
