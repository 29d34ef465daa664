import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** One child process, timed from spawn to exit, with its peak resident set size. */

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  /** VmHWM of the child, polled from /proc while it ran (undefined where /proc is missing). */
  peakRssBytes?: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called on every poll while the child runs; returning true kills it with SIGKILL. */
  killWhen?: (pid: number) => Promise<boolean>;
  pollMs?: number;
  timeoutMs?: number;
  /** Pass the child's output through to ours (for the demo); it is then not captured. */
  inherit?: boolean;
}

const OUTPUT_CAP = 4 * 1024 * 1024;

export function runMeasured(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const began = process.hrtime.bigint();
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: options.inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      if (stdout.length < OUTPUT_CAP) stdout += chunk.toString('utf8');
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < OUTPUT_CAP) stderr += chunk.toString('utf8');
    });
    let peak: number | undefined;
    let polling = false;
    let exited = false;
    const poll = async (): Promise<void> => {
      if (polling || exited || child.pid === undefined) return;
      polling = true;
      try {
        const hwm = await readVmHwm(child.pid);
        if (hwm !== undefined) peak = Math.max(peak ?? 0, hwm);
        if (options.killWhen && !exited && (await options.killWhen(child.pid))) child.kill('SIGKILL');
      } finally {
        polling = false;
      }
    };
    const timer = setInterval(() => void poll(), options.pollMs ?? 20);
    const deadline = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', (error) => {
      clearInterval(timer);
      if (deadline) clearTimeout(deadline);
      reject(error);
    });
    child.on('close', (code, signal) => {
      exited = true;
      clearInterval(timer);
      if (deadline) clearTimeout(deadline);
      const ms = Number(process.hrtime.bigint() - began) / 1e6;
      resolve({ code, signal, ms, ...(peak !== undefined && { peakRssBytes: peak }), stdout, stderr });
    });
  });
}

async function readVmHwm(pid: number): Promise<number | undefined> {
  return readProcField(pid, 'status', /^VmHWM:\s+(\d+)\s+kB/m, 1024);
}

/** Bytes the process has read through read(2)-like calls, sockets included (/proc/<pid>/io rchar). */
export async function readBytesRead(pid: number): Promise<number | undefined> {
  return readProcField(pid, 'io', /^rchar:\s+(\d+)/m, 1);
}

async function readProcField(pid: number, file: string, pattern: RegExp, unit: number): Promise<number | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/${file}`, 'utf8');
    const match = pattern.exec(text);
    return match ? Number(match[1]) * unit : undefined;
  } catch {
    return undefined;
  }
}

/** Throws with the child's stderr when it did not exit 0. */
export function assertOk(what: string, result: RunResult): RunResult {
  if (result.code !== 0) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n');
    throw new Error(`${what} exited ${result.code ?? result.signal}: ${tail}`);
  }
  return result;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median whole-process time of a bare `node -e 0`: the floor under any whole-process figure on this machine now. */
export async function nodeStartFloorMs(runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(assertOk('node -e 0', await runMeasured(process.execPath, ['-e', '0'])).ms);
  return median(times);
}
