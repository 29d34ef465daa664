import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { testTempDir } from '../../../test/support/temp.js';
import { digestOfBytes } from './file-digest.js';
import { HashCursor } from './hash-cursor.js';
import { HashPool } from './hash-pool.js';
import { startWorker } from './start-worker.js';

/**
 * The hash workers are TypeScript modules. Here they run from source in the test runner's process,
 * which has no TypeScript loader a thread could inherit: startWorker gives them tsx's. (Built, they
 * run as .js: test/install/install-path.test.ts hashes through both from an installed package.)
 */

function bytesOf(length: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (i * seed + 7) % 256));
}

describe('the hash pool', () => {
  it('hashes files on its workers by digest type, with progress, and names a missing file', async () => {
    const dir = await testTempDir('mf-pool-');
    const big = bytesOf(300_000, 13);
    const small = bytesOf(1_000, 5);
    await writeFile(join(dir, 'big'), big);
    await writeFile(join(dir, 'small'), small);
    const pool = new HashPool(2);
    try {
      let progress = 0;
      const [a, b] = await Promise.all([pool.hash(join(dir, 'big'), 'sha256', (n) => (progress += n)), pool.hash(join(dir, 'small'), 'git-sha1')]);
      expect(a).toEqual({ hex: digestOfBytes('sha256', big), size: big.length });
      expect(b).toEqual({ hex: digestOfBytes('git-sha1', small), size: small.length });
      expect(progress).toBe(big.length);
      await expect(pool.hash(join(dir, 'absent'), 'sha256')).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
      // A worker that failed a file takes the next one.
      expect((await pool.hash(join(dir, 'small'), 'sha256')).hex).toBe(digestOfBytes('sha256', small));
    } finally {
      await pool.close();
    }
  });
});

describe('the hash cursor', () => {
  it('hashes a file as it grows and gives its digest when the last byte is in', async () => {
    const dir = await testTempDir('mf-cursor-');
    const path = join(dir, 'part');
    const whole = bytesOf(200_000, 11);
    await writeFile(path, whole.subarray(0, 70_000));
    const cursor = HashCursor.open(path, 'git-sha1', whole.length);
    cursor.advance(70_000);
    await appendFile(path, whole.subarray(70_000));
    cursor.advance(150_000);
    cursor.advance(100_000); // never backwards
    expect(await cursor.finish(whole.length)).toBe(digestOfBytes('git-sha1', whole));
  });

  it('fails with ERR_IO when the file is shorter than it should be, and refuses git SHA-1 without a size', async () => {
    const dir = await testTempDir('mf-cursor-');
    const path = join(dir, 'short');
    await writeFile(path, bytesOf(1_000, 3));
    const cursor = HashCursor.open(path, 'sha256', 2_000);
    await expect(cursor.finish(2_000)).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('ended at 1000') });
    expect(() => HashCursor.open(path, 'git-sha1', undefined)).toThrow(expect.objectContaining({ code: 'ERR_BAD_RESPONSE' }));
    // Disposed cursors leave the worker able to serve the next one.
    const other = HashCursor.open(path, 'sha256', 1_000);
    other.dispose();
    const next = HashCursor.open(path, 'sha256', 1_000);
    expect(await next.finish(1_000)).toBe(digestOfBytes('sha256', bytesOf(1_000, 3)));
  });
});

describe('startWorker', () => {
  it('runs the .js worker beside a built module as it is', async () => {
    const dir = await testTempDir('mf-worker-');
    await mkdir(join(dir, 'dist'));
    await writeFile(join(dir, 'dist', 'echo-worker.js'), "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => parentPort.postMessage(`built:${m}`));\n");
    await writeFile(join(dir, 'package.json'), '{"type":"module"}');
    const worker = startWorker(pathToFileURL(join(dir, 'dist', 'module.js')), 'echo-worker');
    try {
      const answer = new Promise((resolve) => worker.once('message', resolve));
      worker.postMessage('hi');
      expect(await answer).toBe('built:hi');
    } finally {
      await worker.terminate();
    }
  });
});

describe('a worker started from source', () => {
  it('runs under a parent started with --input-type=module (node -e): the CommonJS bootstrap does not inherit it', async () => {
    const { execFile } = await import('node:child_process');
    const dir = await testTempDir('mf-pool-eval-');
    const content = bytesOf(5_000, 3);
    await writeFile(join(dir, 'f'), content);
    const pool = new URL('./hash-pool.ts', import.meta.url).href;
    const script = `const { HashPool } = await import(${JSON.stringify(pool)}); const p = new HashPool(1); const r = await p.hash(${JSON.stringify(join(dir, 'f'))}, 'sha256'); await p.close(); process.stdout.write(r.hex);`;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('../../../', import.meta.url).pathname }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)));
    });
    expect(stdout).toBe(digestOfBytes('sha256', content));
  });
});
