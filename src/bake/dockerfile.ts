import { ModelfetchError } from '../core/errors.js';

/**
 * The Dockerfile `modelfetch bake` writes: a `models` stage that installs modelfetch and runs
 * `sync --frozen` from the lockfile into a BuildKit cache mount (so a rebuild fetches only what
 * changed), then copies exactly the locked tree out of the mount; and a final stage that holds the
 * cache, works offline, and checks its files with a HEALTHCHECK that needs no network.
 *
 * Only fixed names reach a RUN or COPY line: `bake` writes the lockfile, manifest, signature, key
 * and packed modelfetch into the context under the names below, whatever the user's files are
 * called, so no file name can add a shell command or an instruction. The few free values (image
 * names, an npm spec) are written as quoted Dockerfile strings and used in RUN only through "${ARG}".
 */
export const CONTEXT_NAMES = {
  lock: 'modelfetch.lock.json',
  signature: 'modelfetch.lock.json.sig',
  publicKey: 'modelfetch-lock.pub',
  manifest: 'modelfetch.yaml',
  /** `npm pack` of the modelfetch that ran `bake`, installed in both stages. */
  tarball: 'modelfetch.tgz',
} as const;

export interface DockerfileOptions {
  /**
   * How the image gets modelfetch: the tarball `bake` packed into the context (default), or an npm
   * install spec of a published version (version, tarball URL or git URL).
   */
  modelfetch: { tarball: true } | { spec: string };
  /** Image with Node.js ≥ 20.18 for the models stage. */
  nodeImage: string;
  /** The final stage's base; needs Node.js ≥ 20.18 for the healthcheck. */
  baseImage: string;
  /** HF_HOME in the image; the cache is `{hfHome}/hub`. */
  hfHome: string;
  /** The lockfile is signed: its signature and the public key that must verify it are in the context. */
  signed: boolean;
}

/**
 * A Dockerfile double-quoted string (as in ARG and ENV values) that reads back as `value`: `\`, `"`
 * and `$` are escaped. A line break or other control character cannot be written on one
 * instruction line, so it is refused.
 */
export function dockerfileString(value: string, what: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\u2028\u2029]/.test(value)) {
    throw new ModelfetchError('ERR_USAGE', `The ${what} ${JSON.stringify(value)} contains a line break or control character, which a Dockerfile cannot hold`, { hint: `Give a ${what} without control characters.` });
  }
  return `"${value.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}

export function renderDockerfile(o: DockerfileOptions): string {
  const hub = `${o.hfHome}/hub`;
  const config = '/etc/modelfetch';
  const n = CONTEXT_NAMES;
  const inputs = [n.manifest, n.lock, ...(o.signed ? [n.signature, n.publicKey] : [])];
  const verify = o.signed ? ` --verify-key ${n.publicKey}` : '';
  const check = ['modelfetch', 'sync', '--check', '--frozen', '--lock', `${config}/${n.lock}`, '--manifest', `${config}/${n.manifest}`, ...(o.signed ? ['--verify-key', `${config}/${n.publicKey}`] : [])];
  // The packed tarball is bind-mounted for the install only, so it takes no room in the image.
  const install =
    'tarball' in o.modelfetch
      ? `RUN --mount=type=bind,source=${n.tarball},target=/tmp/${n.tarball} \\\n    npm install --global --no-audit --no-fund /tmp/${n.tarball}`
      : `ARG MODELFETCH_PACKAGE=${dockerfileString(o.modelfetch.spec, 'npm package spec')}\nRUN npm install --global --no-audit --no-fund "\${MODELFETCH_PACKAGE}"`;
  return `# syntax=docker/dockerfile:1.10
# Written by \`modelfetch bake\`. Build with BuildKit (docker buildx build / DOCKER_BUILDKIT=1):
#   docker build -t my-models .                                # public models
#   docker build --secret id=HF_TOKEN,env=HF_TOKEN -t my-models .   # gated models
# Every file is checked against the lockfile's digests, whichever mirror (HF_ENDPOINT build arg) serves it.
ARG NODE_IMAGE=${dockerfileString(o.nodeImage, 'node image')}
ARG BASE_IMAGE=${dockerfileString(o.baseImage, 'base image')}

FROM \${NODE_IMAGE} AS models
${install}
ARG HF_ENDPOINT=
WORKDIR /preload
COPY ${JSON.stringify([...inputs, './'])}
# The cache mount outlives the build: a rebuild resumes and re-downloads only what changed.
# --frozen fails the build when ${n.manifest} changed since ${n.lock} was made.
RUN --mount=type=cache,id=modelfetch-hub,target=/var/cache/modelfetch,sharing=locked \\
    --mount=type=secret,id=HF_TOKEN,env=HF_TOKEN,required=false \\
    modelfetch sync --frozen --lock ${n.lock} --manifest ${n.manifest}${verify} --cache-dir /var/cache/modelfetch/hub \\
 && modelfetch bake --lock ${n.lock} --cache-dir /var/cache/modelfetch/hub --tree /out/hub

FROM \${BASE_IMAGE}
${install}
COPY --from=models /out/hub/ ${hub}/
COPY ${JSON.stringify([...inputs, `${config}/`])}
ENV HF_HOME=${o.hfHome} \\
    HF_HUB_CACHE=${hub} \\
    HF_HUB_OFFLINE=1 \\
    MODELFETCH_LOCK=${config}/${n.lock}
# Offline check that every locked file is in place with its locked size and digest.
HEALTHCHECK --interval=60s --timeout=120s --start-period=10m --retries=3 \\
  CMD ${JSON.stringify(check)}
`;
}
