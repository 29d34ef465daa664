import { formatBytes as sharedFormatBytes } from '../core/format-bytes.js';
import type { SwarmStatus } from '../transfer/swarm/session.js';

// A local binding: the row renderers are serialised into the page, and a call through an import
// binding would not survive that (module loaders rewrite it).
const formatBytes = sharedFormatBytes;
/**
 * The status page at `/`: rendered on the server with what is known at request time, then kept
 * current by a few lines of script that poll `/api/_status` once a second. No framework, no
 * external assets, so it works on an air-gapped cluster.
 */

export interface StatusRepo {
  repoType: string;
  repoId: string;
  size: number;
  commits: number;
  refs: Record<string, string>;
  /** ms since the epoch. */
  lastUsed: number;
}

export interface StatusDownload {
  repoType: string;
  repoId: string;
  path: string;
  bytesDone: number;
  totalBytes: number;
  /** Clients waiting on it. */
  waiting: number;
}

export interface MirrorStatus {
  startedAt: number;
  upstream: string | null;
  offline: boolean;
  repos: StatusRepo[];
  downloads: StatusDownload[];
  hits: number;
  misses: number;
  /** hits / (hits + misses), or null before the first file request. */
  hitRate: number | null;
  bytesServed: number;
  upstreamBytes: number;
  /** Bytes per second served over the last few seconds. */
  throughput: number;
  /** The swarm this server fetches through (`serve --swarm` with a swarm upstream), when there is one. */
  swarm?: SwarmStatus;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function repoRow(repo: StatusRepo): string {
  const refs = Object.keys(repo.refs).join(', ');
  return `<tr data-repo="${escapeHtml(`${repo.repoType}:${repo.repoId}`)}"><td class="repo">${escapeHtml(repo.repoId)}</td><td>${escapeHtml(repo.repoType)}</td><td class="size" data-bytes="${repo.size}">${formatBytes(repo.size)}</td><td>${repo.commits}</td><td>${escapeHtml(refs)}</td><td class="last-used">${repo.lastUsed ? new Date(repo.lastUsed).toISOString() : ''}</td></tr>`;
}

function downloadRow(d: StatusDownload): string {
  const percent = d.totalBytes > 0 ? Math.floor((d.bytesDone / d.totalBytes) * 100) : 0;
  return `<tr data-download="${escapeHtml(`${d.repoId}/${d.path}`)}"><td>${escapeHtml(d.repoId)}</td><td>${escapeHtml(d.path)}</td><td><progress max="${d.totalBytes}" value="${d.bytesDone}"></progress> <span class="percent">${percent}%</span></td><td>${formatBytes(d.bytesDone)} / ${formatBytes(d.totalBytes)}</td><td>${d.waiting}</td></tr>`;
}

function summary(status: MirrorStatus): string {
  const rate = status.hitRate === null ? '–' : `${(status.hitRate * 100).toFixed(1)}%`;
  return `<span id="hit-rate">${rate}</span> hit rate · <span id="throughput">${formatBytes(status.throughput)}/s</span> · <span id="served">${formatBytes(status.bytesServed)}</span> served · <span id="upstream-bytes">${formatBytes(status.upstreamBytes)}</span> from upstream`;
}

function swarmSummary(swarm: SwarmStatus | undefined): string {
  if (!swarm) return '';
  return `Swarm: <span class="torrents">${swarm.downloading} downloading, ${swarm.seeding} seeding</span> · <span class="peers">${swarm.peers} peers</span> · <span class="from-peers">${formatBytes(swarm.fromPeers)}</span> from peers · <span class="from-web-seeds">${formatBytes(swarm.fromWebSeeds)}</span> from web seeds · <span class="uploaded">${formatBytes(swarm.uploaded)}</span> to peers · ${swarm.piecesRejected} pieces rejected · ${swarm.peersDropped} peers dropped`;
}

/** Client script: the same row renderers, serialised, so server and browser draw identical rows. */
const script = `
// Bundlers that keep function names wrap them in __name(); make that a no-op in the page.
var __name = (f) => f;
const escapeHtml = ${escapeHtml.toString()};
const formatBytes = ${formatBytes.toString()};
const repoRow = ${repoRow.toString()};
const downloadRow = ${downloadRow.toString()};
const summary = ${summary.toString()};
const swarmSummary = ${swarmSummary.toString()};
async function refresh() {
  try {
    const status = await (await fetch('api/_status', { cache: 'no-store' })).json();
    document.querySelector('#repos tbody').innerHTML = status.repos.map(repoRow).join('');
    document.querySelector('#downloads tbody').innerHTML = status.downloads.map(downloadRow).join('');
    document.querySelector('#no-downloads').hidden = status.downloads.length > 0;
    document.querySelector('#summary').innerHTML = summary(status);
    document.querySelector('#swarm').innerHTML = swarmSummary(status.swarm);
    document.body.dataset.updated = String(Date.now());
  } catch (error) {
    document.body.dataset.error = String(error);
  }
}
setInterval(refresh, 1000);
`;

export function renderStatusPage(status: MirrorStatus): string {
  const upstream = status.offline ? 'offline' : escapeHtml(status.upstream ?? '');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelfetch mirror</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd}
th{background:#f4f4f4} .size{text-align:right;font-variant-numeric:tabular-nums}
progress{width:12em}
</style></head>
<body>
<h1>modelfetch mirror</h1>
<p>Upstream: <code id="upstream">${upstream}</code> · up since ${new Date(status.startedAt).toISOString()}</p>
<p id="summary">${summary(status)}</p>
<p id="swarm">${swarmSummary(status.swarm)}</p>
<h2>Downloads in flight</h2>
<p id="no-downloads"${status.downloads.length > 0 ? ' hidden' : ''}>None.</p>
<table id="downloads"><thead><tr><th>Repo</th><th>File</th><th>Progress</th><th>Bytes</th><th>Clients waiting</th></tr></thead>
<tbody>${status.downloads.map(downloadRow).join('')}</tbody></table>
<h2>Cached repositories</h2>
<table id="repos"><thead><tr><th>Repo</th><th>Type</th><th>Size</th><th>Snapshots</th><th>Refs</th><th>Last used</th></tr></thead>
<tbody>${status.repos.map(repoRow).join('')}</tbody></table>
<script>${script}</script>
</body></html>`;
}
