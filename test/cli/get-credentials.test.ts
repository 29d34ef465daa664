import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { MiB, testScope } from '../transfer/helpers.js';

const scope = testScope();
const SECRET = 'Bearer get-credential-secret';

describe('get --header credentials stay on the origin they were given for (case 32)', () => {
  it('a --sha256-url on another origin gets no --header credential; the download URL still does', async () => {
    const s = await scope.setup(MiB);
    const sums = await scope.server();
    sums.route('/sums', (_req, res) => void res.end(`${s.info.sha256}  model.bin\n`));
    const run = await runCli(['get', s.url, '-o', join(s.dir, 'a.bin'), '--sha256-url', `${sums.origin}/sums`, '--header', `Authorization: ${SECRET}`, '--header', 'X-Trace: kept', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(sums.requests).toHaveLength(1);
    expect(sums.requests[0]?.headers.authorization).toBeUndefined();
    expect(sums.requests[0]?.headers['x-trace']).toBe('kept');
    expect(s.server.requests.length).toBeGreaterThan(0);
    for (const request of s.server.requests) expect(request.headers.authorization).toBe(SECRET);
  });

  it('a --sha256-url on the download URL\'s own origin gets the credential (a private checksum next to the file)', async () => {
    const s = await scope.setup(MiB);
    s.server.route('/sums', (req, res) => {
      if (req.headers.authorization !== SECRET) {
        res.statusCode = 401;
        res.end();
        return;
      }
      res.end(`${s.info.sha256}\n`);
    });
    const run = await runCli(['get', s.url, '-o', join(s.dir, 'b.bin'), '--sha256-url', `${s.server.origin}/sums`, '--header', `Authorization: ${SECRET}`, '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });
});
