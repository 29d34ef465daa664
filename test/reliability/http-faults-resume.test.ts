import { randomBytes } from 'node:crypto';
import { lstat, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import { FAST, interrupt, sizeOf, transportFixture, TRANSPORTS } from './engine-fixture.js';

/** The resume journal and the temp file it vouches for (cases 3, 16, 17), over http (fast-http) and https (undici). */

for (const transport of TRANSPORTS) {
  describe.skipIf(!transport.available)(transport.name, () => {
    const h = transportFixture(transport);

    describe('resume journal (cases 16, 17)', () => {
      async function interrupted() {
        const c = await h.setup(3 * 1024 * 1024);
        await interrupt(c, 1_500_000);
        return c;
      }

      it('an interrupted download resumes and reuses finished ranges', async () => {
        const c = await interrupted();
        c.server.resetLog();
        const result = await transferFile(c.job, FAST);
        expect(result.digest.hex).toBe(c.sha256);
        expect(result.bytesResumed).toBeGreaterThan(0);
        expect(c.server.bodyBytesServed()).toBeLessThan(c.data.length);
      });

      const tamper: Array<[string, (journal: Buffer) => Buffer]> = [
        ['torn (cut in half)', (j) => j.subarray(0, Math.floor(j.length / 2))],
        ['garbage', () => randomBytes(64)],
        ['bit-flipped', (j) => Buffer.from(j.map((b, i) => (i === Math.floor(j.length / 2) ? b ^ 0x01 : b)))],
        ['empty', () => Buffer.alloc(0)],
      ];
      for (const [what, edit] of tamper) {
        it(`a ${what} journal is not trusted: the result is still the right file`, async () => {
          const c = await interrupted();
          const journalPath = `${c.job.tempPath}.journal`;
          await writeFile(journalPath, edit(await readFile(journalPath)));
          const result = await transferFile(c.job, FAST).catch(async (error: unknown) => {
            expect(isModelfetchError(error)).toBe(true);
            return transferFile(c.job, FAST);
          });
          expect(result.digest.hex).toBe(c.sha256);
          expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        });
      }

      it('a symlink planted at the temp path of a resumable download is not followed (case 3)', async () => {
        const c = await interrupted();
        // Same size as the file, beside a valid journal: only O_NOFOLLOW keeps the resume out of it.
        const victim = join(c.dir, 'victim');
        const original = randomBytes(c.data.length);
        await writeFile(victim, original);
        await rm(c.job.tempPath);
        await symlink(victim, c.job.tempPath);
        const result = await transferFile(c.job, FAST);
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(victim)).equals(original), 'target untouched').toBe(true);
        expect((await lstat(c.job.tempPath)).isFile()).toBe(true);
      });

      it('a journal that claims ranges over zeroed data never yields a wrong file', async () => {
        const c = await interrupted();
        // The journal is intact but the data it vouches for was overwritten (disk corruption, tampering).
        await writeFile(c.job.tempPath, Buffer.alloc(await sizeOf(c.job.tempPath)));
        const result = await transferFile(c.job, FAST).catch(async (error: unknown) => {
          expect(isModelfetchError(error, 'ERR_INTEGRITY')).toBe(true);
          return transferFile(c.job, FAST);
        });
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
      });

      it('never writes through a symlink planted at the temp path or its journal', async () => {
        const c = await h.setup(1024 * 1024);
        const victim = join(c.dir, 'victim.txt');
        await writeFile(victim, 'precious');
        await symlink(victim, c.job.tempPath);
        await symlink(victim, `${c.job.tempPath}.journal`);
        const result = await transferFile(c.job);
        expect(await readFile(victim, 'utf8')).toBe('precious');
        expect(result.digest.hex).toBe(c.sha256);
      });
    });
  });
}
