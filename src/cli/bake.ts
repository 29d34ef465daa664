import type { Command } from 'commander';
import type { CliIo } from './main.js';
import { examples } from './examples.js';

interface BakeFlags {
  lock: string;
  manifest?: string;
  out: string;
  oci?: boolean;
  tag: string;
  tree?: string;
  cacheDir?: string;
  verifyKey?: string;
  endpoint?: string;
  package?: string;
  baseImage?: string;
  nodeImage?: string;
}

export function registerBakeCommand(program: Command, io: CliIo): void {
  program
    .command('bake')
    .description('Write a Docker build context (and with --oci an OCI image layout) of an image with the lockfile\'s models in place')
    .addHelpText('after', examples(['modelfetch bake --out image && docker build image', 'modelfetch bake --oci --tag models     # an OCI image layout, no Docker needed']))
    .option('--lock <file>', 'lockfile', 'modelfetch.lock.json')
    .option('--manifest <file>', 'manifest (default: modelfetch.yaml beside the lockfile)')
    .option('--out <dir>', 'build context folder to write', 'modelfetch-image')
    .option('--oci', 'also write an OCI image layout of the models to OUT/oci (syncs the cache first); no Docker needed')
    .option('--tag <name>', 'ref name of the OCI image', 'models')
    .option('--tree <dir>', 'only copy the locked cache tree (blobs, snapshot links, refs) from --cache-dir into DIR; used inside the Dockerfile')
    .option('--cache-dir <dir>', 'hub cache to read the files from (default HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub)')
    .option('--verify-key <public>', 'require a valid lockfile signature by this key, here and in the image build')
    .option('--endpoint <url>', 'hub or mirror for the sync before --oci')
    .option('--package <spec>', 'npm spec of a published modelfetch to install in the image (default: this modelfetch, packed into the build context)')
    .option('--base-image <image>', 'final stage base image (needs Node.js >= 20.18 for the healthcheck)')
    .option('--node-image <image>', 'image of the stage that downloads the models')
    .action(async (flags: BakeFlags) => {
      const [{ bake, exportLockedTree }, { resolveCacheDir }] = await Promise.all([import('../bake/bake.js'), import('../core/env.js')]);
      const cacheDir = flags.cacheDir ?? resolveCacheDir(io.env);
      if (flags.tree) {
        await exportLockedTree(flags.lock, cacheDir, flags.tree);
        io.stderr.write(`modelfetch: locked cache tree written to ${flags.tree}\n`);
        return;
      }
      const { syncFromFlags } = await import('./sync.js');
      const result = await bake({
        lockPath: flags.lock,
        outDir: flags.out,
        cacheDir,
        ...(flags.manifest !== undefined && { manifestPath: flags.manifest }),
        ...(flags.oci && { oci: true, tag: flags.tag }),
        ...(flags.verifyKey !== undefined && { verifyKey: flags.verifyKey }),
        ...(flags.package !== undefined && { modelfetchPackage: flags.package }),
        ...(flags.baseImage !== undefined && { baseImage: flags.baseImage }),
        ...(flags.nodeImage !== undefined && { nodeImage: flags.nodeImage }),
        ensureCached: async () => {
          await syncFromFlags({ lock: flags.lock, cacheDir, ...(flags.verifyKey !== undefined && { verifyKey: flags.verifyKey }), ...(flags.endpoint !== undefined && { endpoint: flags.endpoint }) }, io);
        },
      });
      io.stdout.write(`build context: ${flags.out} (${result.files.join(', ')})\n`);
      if (result.oci) {
        io.stdout.write(`OCI layout: ${result.oci.layout}:${result.oci.tag}\n  manifest ${result.oci.manifestDigest}\n  layer    ${result.oci.layerDigest} (${result.oci.layerSize} bytes)\n  diff_id  ${result.oci.diffId}\n`);
      }
    });
}
