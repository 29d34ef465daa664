/**
 * The Dockerfile `modelfetch bake` writes: a `models` stage that installs modelfetch and runs
 * `sync --frozen` from the lockfile into a BuildKit cache mount (so a rebuild fetches only what
 * changed), then copies exactly the locked tree out of the mount; and a final stage that holds the
 * cache, works offline, and checks its files with a HEALTHCHECK that needs no network.
 */

export interface DockerfileOptions {
  /** npm install spec of modelfetch inside the image (version, tarball or git URL). */
  modelfetchPackage: string;
  /** Image with Node.js ≥ 20.18 for the models stage. */
  nodeImage: string;
  /** The final stage's base; needs Node.js ≥ 20.18 for the healthcheck. */
  baseImage: string;
  /** HF_HOME in the image; the cache is `{hfHome}/hub`. */
  hfHome: string;
  lockName: string;
  manifestName: string;
  /** Set when the lockfile is signed: its signature and the public key that must verify it. */
  signature?: { signatureName: string; publicKeyName: string };
}

export function renderDockerfile(o: DockerfileOptions): string {
  const hub = `${o.hfHome}/hub`;
  const config = '/etc/modelfetch';
  const inputs = [o.manifestName, o.lockName, ...(o.signature ? [o.signature.signatureName, o.signature.publicKeyName] : [])];
  const verify = o.signature ? ` --verify-key ${o.signature.publicKeyName}` : '';
  const check = ['modelfetch', 'sync', '--check', '--frozen', '--lock', `${config}/${o.lockName}`, '--manifest', `${config}/${o.manifestName}`, ...(o.signature ? ['--verify-key', `${config}/${o.signature.publicKeyName}`] : [])];
  return `# syntax=docker/dockerfile:1.10
# Written by \`modelfetch bake\` from ${o.lockName}. Build with BuildKit (docker buildx build / DOCKER_BUILDKIT=1):
#   docker build -t my-models .                                # public models
#   docker build --secret id=HF_TOKEN,env=HF_TOKEN -t my-models .   # gated models
# Every file is checked against the lockfile's digests, whichever mirror (HF_ENDPOINT build arg) serves it.
ARG NODE_IMAGE=${o.nodeImage}
ARG BASE_IMAGE=${o.baseImage}

FROM \${NODE_IMAGE} AS models
ARG MODELFETCH_PACKAGE=${o.modelfetchPackage}
ARG HF_ENDPOINT=
RUN npm install --global --no-audit --no-fund "\${MODELFETCH_PACKAGE}"
WORKDIR /preload
COPY ${inputs.join(' ')} ./
# The cache mount outlives the build: a rebuild resumes and re-downloads only what changed.
# --frozen fails the build when ${o.manifestName} changed since ${o.lockName} was made.
RUN --mount=type=cache,id=modelfetch-hub,target=/var/cache/modelfetch,sharing=locked \\
    --mount=type=secret,id=HF_TOKEN,env=HF_TOKEN,required=false \\
    modelfetch sync --frozen --lock ${o.lockName} --manifest ${o.manifestName}${verify} --cache-dir /var/cache/modelfetch/hub \\
 && modelfetch bake --lock ${o.lockName} --cache-dir /var/cache/modelfetch/hub --tree /out/hub

FROM \${BASE_IMAGE}
ARG MODELFETCH_PACKAGE=${o.modelfetchPackage}
RUN npm install --global --no-audit --no-fund "\${MODELFETCH_PACKAGE}"
COPY --from=models /out/hub/ ${hub}/
COPY ${inputs.join(' ')} ${config}/
ENV HF_HOME=${o.hfHome} \\
    HF_HUB_CACHE=${hub} \\
    HF_HUB_OFFLINE=1 \\
    MODELFETCH_LOCK=${config}/${o.lockName}
# Offline check that every locked file is in place with its locked size and digest.
HEALTHCHECK --interval=60s --timeout=120s --start-period=10m --retries=3 \\
  CMD ${JSON.stringify(check)}
`;
}
