import { systemClock } from '../../src/transfer/options.js';
import { downloadXetFile } from '../../src/transfer/xet/xet-download.js';
import { hubXetTokenProvider } from '../../src/transfer/xet/xet-token.js';

/** A Xet download in its own process, for kill -9 tests: argv = token URL, file hash, size, SHA-256, temp path. */
const [tokenUrl = '', fileHash = '', size = '0', sha256 = '', tempPath = ''] = process.argv.slice(2);
const token = hubXetTokenProvider({ tokenUrl, transport: { dispatcher: undefined, fast: undefined }, clock: systemClock });
const result = await downloadXetFile({ fileHash, size: Number(size), sha256, tempPath, token }, { connections: 1 });
process.stdout.write(`${JSON.stringify(result)}\n`);
