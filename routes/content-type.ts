/**
 * Content-Type of a served file, from its name alone (CONTRACT.md: from the extension, else
 * application/octet-stream). Content sniffing is deliberately not done: the type must not change
 * with what an uploader chose to put in a file.
 */
import { createRequire } from 'node:module';
import { extname } from 'node:path/posix';

interface MimeLookup {
  getType(pathOrExtension: string): string | null;
}

// mime v3 is CommonJS and ships no type declarations (and @types/mime is not a dependency), so
// it is loaded through require with the one method used typed here, instead of an untyped import.
const mime = createRequire(import.meta.url)('mime') as MimeLookup;

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/**
 * Types that are text and whose charset would otherwise be guessed by the client. UTF-8 is the
 * only sane assumption for files of unknown origin; for JSON it is the required encoding anyway
 * (RFC 8259 §8.1).
 */
function wantsCharset(type: string): boolean {
  return type.startsWith('text/') || type === 'application/json' || type === 'application/javascript';
}

/**
 * The Content-Type for a file name (a base name or a path). Only the extension counts, as
 * path.extname sees it: `README` and `.bashrc` have none, and a file named `json` is not JSON
 * (mime.getType alone would say it is).
 */
export function contentTypeFor(name: string): string {
  const ext = extname(name);
  if (ext === '') return DEFAULT_CONTENT_TYPE;
  let type = byExtension.get(ext);
  if (type === undefined) {
    const found = mime.getType(ext.slice(1));
    type = found === null ? DEFAULT_CONTENT_TYPE : wantsCharset(found) ? `${found}; charset=utf-8` : found;
    // Extensions come from clients: keep the memo bounded.
    if (byExtension.size >= MEMO_MAX) byExtension.clear();
    byExtension.set(ext, type);
  }
  return type;
}

/** Every GET asks; mime's lookup lower-cases and searches each time, so answers are memoised. */
const byExtension = new Map<string, string>();
const MEMO_MAX = 1024;
