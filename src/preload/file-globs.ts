/**
 * include/exclude globs with huggingface_hub's semantics (`allow_patterns` / `ignore_patterns`,
 * Python fnmatch): `*` matches any run of characters, `/` included, so `*.json` also matches
 * `sub/tokenizer.json`; `?` one character; `[abc]` / `[!abc]` a class; a pattern ending in `/` matches
 * everything below that folder. No include patterns means every file.
 */
export function fileFilter(include: string[], exclude: string[]): (path: string) => boolean {
  const allow = include.map(globToRegExp);
  const deny = exclude.map(globToRegExp);
  return (path) => (allow.length === 0 || allow.some((re) => re.test(path))) && !deny.some((re) => re.test(path));
}

export function globToRegExp(glob: string): RegExp {
  const pattern = glob.endsWith('/') ? `${glob}*` : glob;
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}
