import { describe, expect, it } from 'vitest';
import { fileFilter } from './file-globs.js';

describe('fileFilter (huggingface_hub allow/ignore patterns)', () => {
  const paths = ['config.json', 'sub/tokenizer.json', 'model.safetensors', 'onnx/model.onnx', 'a.bin', 'b.bin', 'c+d.txt'];
  const pick = (include: string[], exclude: string[] = []) => paths.filter(fileFilter(include, exclude));

  it('matches across folders like fnmatch, with folders, classes and exclusions', () => {
    expect(pick([])).toEqual(paths);
    expect(pick(['*.json'])).toEqual(['config.json', 'sub/tokenizer.json']);
    expect(pick(['onnx/'])).toEqual(['onnx/model.onnx']);
    expect(pick(['[ab].bin'])).toEqual(['a.bin', 'b.bin']);
    expect(pick(['[!a].bin'])).toEqual(['b.bin']);
    expect(pick(['?.bin'])).toEqual(['a.bin', 'b.bin']);
    expect(pick(['c+d.txt'])).toEqual(['c+d.txt']);
    expect(pick(['*'], ['*.bin', 'onnx/*'])).toEqual(['config.json', 'sub/tokenizer.json', 'model.safetensors', 'c+d.txt']);
  });
});
