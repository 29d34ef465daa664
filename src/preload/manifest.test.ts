import { describe, expect, it } from 'vitest';
import { parseManifest } from './manifest.js';

describe('parseManifest', () => {
  it('fills defaults and keeps every field', () => {
    const manifest = parseManifest(
      ['version: 1', 'models:', '  - repo: IndexTeam/IndexTTS-2', '    include: ["*.json", "*.safetensors"]', '    exclude: "*.onnx"', '    local-dir: checkpoints/', '  - repo: org/data', '    repo-type: dataset', '    revision: v1.0'].join('\n'),
    );
    expect(manifest.models).toEqual([
      { source: 'hf', repoType: 'model', repo: 'IndexTeam/IndexTTS-2', revision: 'main', include: ['*.json', '*.safetensors'], exclude: ['*.onnx'], localDir: 'checkpoints' },
      { source: 'hf', repoType: 'dataset', repo: 'org/data', revision: 'v1.0', include: [], exclude: [] },
    ]);
  });

  it('defaults a ModelScope revision to master and keeps local-dir to hf models', () => {
    expect(parseManifest('models:\n  - repo: damo/tts\n    source: modelscope\n').models[0]!.revision).toBe('master');
    expect(() => parseManifest('models:\n  - repo: damo/tts\n    source: modelscope\n    local-dir: x\n')).toThrow(/:4:16: models\[0\]\.local-dir is for hf models/);
  });

  it.each([
    ['models:\n  - repo: a/b\n    includes: ["*"]\n', /modelfetch\.yaml:3:5: unknown field "includes" in models\[0\]/],
    ['models:\n  - revision: main\n', /:2:5: models\[0\]\.repo is required/],
    ['models:\n  - repo: a/b\n    source: s3\n', /:3:13: models\[0\]\.source must be one of hf, modelscope, url/],
    ['models:\n  - repo: ../etc\n', /:2:11: models\[0\]\.repo: Invalid repo id/],
    ['version: 1\nmodels:\n  - repo: acme\n', /modelfetch\.yaml:3:11: models\[0\]\.repo must be org\/name, got "acme"/],
    ['models:\n  - repo: acme\n    source: modelscope\n', /:2:11: models\[0\]\.repo must be org\/name/],
    ['models:\n  - repo: a/b\n    local-dir: ../outside\n', /:3:16: models\[0\]\.local-dir: Refusing path/],
    ['models:\n  - repo: a/b\n    include: [1]\n', /:3:15: models\[0\]\.include must be a glob/],
    ['models: []\n', /`models` must be a non-empty list/],
    ['version: 2\nmodels:\n  - repo: a/b\n', /:1:10: `version` must be 1/],
    ['models:\n  - repo: a/b\n  - repo: a/b\n', /:3:5: models\[1\] repeats models\[0\]/],
    ['models:\n  - repo: a/b\n    repo: c/d\n', /:3:5: not valid YAML/],
    ['models:\n  - repo: a/b\nextra: 1\n', /:3:1: unknown field "extra" in manifest/],
  ])('rejects %j naming line and field', (text, message) => {
    expect(() => parseManifest(text)).toThrow(message);
  });
});
