/** Query parameters that carry credentials on hubs and CDNs (signed URLs included). */
const SECRET_KEY_NAMES = 'token|access_token|api_key|apikey|key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|policy|key-pair-id|expires_signature';
const SECRET_QUERY_KEYS = new RegExp(`^(${SECRET_KEY_NAMES})$`, 'i');

/** Removes user info and secret query values from a URL; anything unparsable is redacted as free text. */
export function redactUrl(input: string): string {
  return scrubUrl(input) ?? redactText(input);
}

function scrubUrl(input: string): string | undefined {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return undefined;
  }
  if (url.username || url.password) {
    url.username = '***';
    url.password = '';
  }
  for (const key of [...url.searchParams.keys()]) {
    if (SECRET_QUERY_KEYS.test(key)) url.searchParams.set(key, '***');
  }
  return url.toString();
}

const TOKEN_PATTERNS: RegExp[] = [
  /\bhf_[A-Za-z0-9]{8,}\b/g, // Hugging Face user tokens
  /\bms-[A-Za-z0-9-]{8,}\b/g, // ModelScope tokens
  /(Bearer\s+)[^\s"',]+/gi,
  /(authorization["']?\s*[:=]\s*["']?)[^"',\s]+/gi,
  // The same query values in a URL without its origin (a request line in an access log).
  new RegExp(`([?&](?:${SECRET_KEY_NAMES})=)[^&#\\s"'<>]+`, 'gi'),
];

/** Redacts tokens and credentialed URLs inside free text (error messages, log lines). */
export function redactText(text: string): string {
  let out = text.replace(/https?:\/\/[^\s"'<>]+/g, (match) => scrubUrl(match) ?? match);
  for (const pattern of TOKEN_PATTERNS) {
    out = out.replace(pattern, (_m, prefix: unknown) => (typeof prefix === 'string' ? `${prefix}***` : '***'));
  }
  return out;
}

/** Header names whose values are secrets and must never be logged or sent to another origin. */
export const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization', 'x-api-key', 'x-auth-token']);

export function isCredentialHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return CREDENTIAL_HEADERS.has(lower) || lower.includes('token') || lower.includes('auth');
}
