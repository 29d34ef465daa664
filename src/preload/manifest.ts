import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml';
import { assertRepoId } from '../core/repo-ref.js';
import { assertSafeRelativePath, assertSafeRevision } from '../core/validate.js';
import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';
import { modelKey } from './model-key.js';

/**
 * `modelfetch.yaml`: the models a service needs, before they are pinned by `modelfetch lock`.
 *
 *   version: 1
 *   models:
 *     - repo: IndexTeam/IndexTTS-2
 *       revision: main            # branch, tag or commit; default main
 *       include: ["*.json", "*.safetensors"]
 *       exclude: ["*.onnx"]
 *       local-dir: checkpoints    # optional: also link the files here (relative to where sync/run runs)
 *       repo-type: model          # model | dataset | space; default model
 *       source: hf                # hf | modelscope | url; default hf
 *
 * Validation is strict: an unknown key, a wrong type or an unsafe value is an error that names the
 * line and the field, because a typo silently ignored would preload the wrong thing.
 */

export type PreloadSource = 'hf' | 'modelscope' | 'url';

export interface ManifestModel {
  source: PreloadSource;
  repoType: RepoType;
  /** `org/name` (hf, modelscope) or the file's http(s) URL (url). */
  repo: string;
  revision: string;
  include: string[];
  exclude: string[];
  /** Relative to the directory sync/run runs in, POSIX separators. */
  localDir?: string;
}

export interface Manifest {
  version: 1;
  models: ManifestModel[];
}

const MODEL_KEYS = ['source', 'repo', 'revision', 'include', 'exclude', 'local-dir', 'repo-type'] as const;
const SOURCES: readonly PreloadSource[] = ['hf', 'modelscope', 'url'];
const REPO_TYPES: readonly RepoType[] = ['model', 'dataset', 'space'];

export async function readManifest(path: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ModelfetchError('ERR_USAGE', `Cannot read the manifest ${path}: ${(error as Error).message}`, {
      hint: 'Write a modelfetch.yaml (see README "Preloads"), or pass its path with --manifest.',
      cause: error,
    });
  }
  return parseManifest(text, path);
}

export function parseManifest(text: string, fileName = 'modelfetch.yaml'): Manifest {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (node: Node | null | undefined): string => {
    const offset = node?.range?.[0];
    if (offset === undefined) return fileName;
    const { line, col } = lines.linePos(offset);
    return `${fileName}:${line}:${col}`;
  };
  const fail = (node: Node | null | undefined, message: string): never => {
    throw new ModelfetchError('ERR_USAGE', `${at(node)}: ${message}`, { hint: 'Fix the manifest; see README "Preloads" for its fields.' });
  };
  const first = doc.errors[0];
  if (first) {
    const { line, col } = lines.linePos(first.pos[0]);
    throw new ModelfetchError('ERR_USAGE', `${fileName}:${line}:${col}: not valid YAML: ${first.message.split('\n')[0]}`, { hint: 'Fix the YAML syntax.' });
  }
  const root = doc.contents;
  if (!isMap(root)) return fail(root, 'expected a mapping with `version` and `models`');
  checkKeys(root, ['version', 'models'], 'manifest', fail);
  const version = root.get('version', true);
  if (version !== undefined && (root.toJSON() as { version?: unknown }).version !== 1) fail(version as Node, '`version` must be 1');
  const models = root.get('models', true);
  if (!isSeq(models) || models.items.length === 0) return fail(models ?? root, '`models` must be a non-empty list');

  const parsed = models.items.map((item, index) => {
    const where = `models[${index}]`;
    if (!isMap(item)) return fail(item as Node, `${where} must be a mapping`);
    checkKeys(item, MODEL_KEYS, where, fail);
    const str = (key: string, required: boolean): string | undefined => {
      const node = item.get(key, true);
      if (node === undefined) return required ? fail(item, `${where}.${key} is required`) : undefined;
      if (!isScalar(node) || typeof node.value !== 'string' || node.value.length === 0) return fail(node, `${where}.${key} must be a non-empty string`);
      return node.value;
    };
    const list = (key: string): string[] => {
      const node = item.get(key, true);
      if (node === undefined) return [];
      const entries = isSeq(node) ? node.items : [node];
      return entries.map((entry) => {
        if (!isScalar(entry) || typeof entry.value !== 'string' || entry.value.length === 0) return fail(entry as Node, `${where}.${key} must be a glob or a list of globs`);
        return entry.value;
      });
    };
    const guard = <T>(key: string, check: () => T): T => {
      try {
        return check();
      } catch (error) {
        return fail(item.get(key, true) as Node, `${where}.${key}: ${(error as Error).message}`);
      }
    };
    const source = (str('source', false) ?? 'hf') as PreloadSource;
    if (!SOURCES.includes(source)) fail(item.get('source', true) as Node, `${where}.source must be one of ${SOURCES.join(', ')}`);
    const repoType = (str('repo-type', false) ?? 'model') as RepoType;
    if (!REPO_TYPES.includes(repoType)) fail(item.get('repo-type', true) as Node, `${where}.repo-type must be one of ${REPO_TYPES.join(', ')}`);
    const repo = str('repo', true)!;
    if (source === 'url') guard('repo', () => assertHttpUrl(repo));
    else guard('repo', () => assertRepoId(repo));
    // A lockfile pins canonical ids: a bare name (`gpt2`) is only a Hub redirect to `org/name`.
    if (source !== 'url' && !repo.includes('/')) fail(item.get('repo', true) as Node, `${where}.repo must be org/name, got ${JSON.stringify(repo)} (write the full id, e.g. openai-community/gpt2 for gpt2)`);
    // Each hub's own default branch.
    const revision = str('revision', false) ?? (source === 'modelscope' ? 'master' : 'main');
    guard('revision', () => assertSafeRevision(revision));
    if (source === 'modelscope' && repoType !== 'model') fail(item.get('repo-type', true) as Node, `${where}.repo-type: ModelScope preloads are models only`);
    const localDir = str('local-dir', false);
    if (localDir !== undefined && source !== 'hf') fail(item.get('local-dir', true) as Node, `${where}.local-dir is for hf models (ModelScope files go to MODELSCOPE_CACHE)`);
    if (localDir !== undefined) guard('local-dir', () => assertSafeRelativePath(localDir.replace(/\/+$/, ''), 'local-dir'));
    const model: ManifestModel = { source, repoType, repo, revision, include: list('include'), exclude: list('exclude') };
    if (localDir !== undefined) model.localDir = localDir.replace(/\/+$/, '');
    return model;
  });

  const seen = new Map<string, number>();
  parsed.forEach((model, index) => {
    const key = modelKey(model);
    const previous = seen.get(key);
    if (previous !== undefined) fail(models.items[index] as Node, `models[${index}] repeats models[${previous}] (${model.repo}@${model.revision}); merge their include lists`);
    seen.set(key, index);
  });
  return { version: 1, models: parsed };
}


function checkKeys(map: YAMLMap, allowed: readonly string[], where: string, fail: (node: Node | null | undefined, message: string) => never): void {
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? pair.key.value : undefined;
    if (typeof key !== 'string' || !allowed.includes(key)) {
      fail(pair.key as Node, `unknown field ${JSON.stringify(String(key))} in ${where} (allowed: ${allowed.join(', ')})`);
    }
  }
}

function assertHttpUrl(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error('not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('must be an http(s) URL');
}
