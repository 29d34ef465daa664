import { createMirrorServer, type MirrorServerOptions } from '../../src/server/mirror-server.js';

/**
 * Runs a mirror in a process of its own, so a test can measure that process alone (its RSS, its
 * descriptors): options as JSON in argv[2]; prints `listening on URL` on stderr, stops on SIGTERM.
 */
const options = JSON.parse(process.argv[2] ?? '{}') as MirrorServerOptions;
const mirror = createMirrorServer(options);
const url = await mirror.listen();
process.stderr.write(`listening on ${url}\n`);
process.once('SIGTERM', () => {
  void mirror.close().then(() => process.exit(0));
});
