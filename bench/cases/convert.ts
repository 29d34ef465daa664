import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GiB, limitCheck, missingCommands, MiB, ratioCheck, seconds, type BenchCase } from '../lib/bench-case.js';
import { lastJson } from '../lib/modelfetch-cli.js';
import { assertOk } from '../lib/proc.js';
import { writeF32Safetensors } from '../lib/safetensors-files.js';

/** Writes `bytes` to a new file in 8 MiB writes and fsyncs it: the disk write speed this case compares with. */
async function diskWriteSpeed(path: string, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(8 * MiB, 0x5a);
  const began = process.hrtime.bigint();
  const file = await open(path, 'wx');
  try {
    for (let at = 0; at < bytes; at += chunk.length) await file.write(chunk, 0, Math.min(chunk.length, bytes - at), at);
    await file.sync();
  } finally {
    await file.close();
  }
  const ms = Number(process.hrtime.bigint() - began) / 1e6;
  await rm(path, { force: true });
  return bytes / MiB / (ms / 1000);
}

/**
 * `convert --dtype f16` of 1 GiB of F32 weights (4 shards) into a new folder: throughput in F32 bytes
 * per second against the disk's own write speed measured here, and peak RSS.
 */
export const convertCase: BenchCase = {
  id: 'convert',
  title: 'convert --dtype f16 of 1 GiB of F32 safetensors: speed vs the disk write speed, peak RSS',
  unavailable: (ctx) => missingCommands(ctx, 'convert'),
  async run(ctx, report) {
    const total = ctx.quick ? 256 * MiB : GiB;
    const source = join(ctx.work, 'convert-source');
    await mkdir(source, { recursive: true });
    ctx.log(`writing ${total / MiB} MiB of F32 safetensors`);
    for (let i = 0; i < 4; i++) await writeF32Safetensors(join(source, `model-0000${i + 1}-of-00004.safetensors`), `layers.${i}.weight`, total / 4, i + 1);
    const writeMBps = await diskWriteSpeed(join(ctx.work, 'convert-disk-speed'), total);
    const out = join(ctx.work, 'convert-out');
    const run = assertOk('modelfetch convert', await ctx.cli.run(['convert', source, '--dtype', 'f16', '--out', out, '--json']));
    const result = lastJson(run.stdout);
    if (!result || result.ok !== true || result.filesConverted !== 4) throw new Error(`convert printed no result: ${run.stdout.slice(0, 300)}`);
    const convertMBps = total / MiB / (run.ms / 1000);
    const rssMB = (run.peakRssBytes ?? 0) / 1e6;
    await rm(out, { recursive: true, force: true });
    await rm(source, { recursive: true, force: true });
    report.notes.push(`${total / MiB} MiB of F32 in 4 files, converted to ${total / 2 / MiB} MiB of F16 (whole process, fsync included); disk speed: ${total / MiB} MiB in 8 MiB writes + fsync`);
    report.measurements.push({ label: 'disk write speed', value: Math.round(writeMBps), unit: 'MB/s' });
    report.measurements.push({ label: 'convert (F32 MiB per second)', value: Math.round(convertMBps), unit: 'MB/s' });
    report.measurements.push({ label: 'convert time', value: seconds(run.ms), unit: 's' });
    report.measurements.push({ label: 'convert peak RSS', value: Math.round(rssMB), unit: 'MB' });
    report.checks.push(ratioCheck('convert speed / disk write speed', Math.round((convertMBps / writeMBps) * 100) / 100, '≥', 0.5));
    report.checks.push(limitCheck('convert peak RSS', Math.round(rssMB), 'MB', '≤', 200));
  },
};
