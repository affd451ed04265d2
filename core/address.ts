/**
 * Socket addresses: the one text syntax of CONTRACT.md ("Socket addresses") and the exact
 * sun_path bytes the kernel sees. This is the only module where the NUL-prefixed form exists.
 *
 *   @name          abstract name, exactly the bytes of `name` (tight addrlen, never padded)
 *   @a\x00b        \xHH writes any byte, \\ a backslash
 *   @              kernel autobind (server only)
 *   fd:N           an inherited listening socket
 *   anything else  a filesystem socket path
 */
import { ngError } from './errors.js';

/** sizeof(sockaddr_un.sun_path) is 108; an abstract name spends one byte on the leading NUL. */
export const MAX_NAME_BYTES = 107;

export type Address =
  | { readonly kind: 'abstract'; readonly name: Buffer }
  | { readonly kind: 'autobind' }
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'fd'; readonly fd: number };

export const DEFAULT_ADDRESS = '@nullgate';

function decodeEscapes(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length;) {
    const ch = text[i]!;
    if (ch !== '\\') {
      const cp = text.codePointAt(i)!;
      const s = String.fromCodePoint(cp);
      for (const b of Buffer.from(s, 'utf8')) out.push(b);
      i += s.length;
      continue;
    }
    const next = text[i + 1];
    if (next === '\\') {
      out.push(0x5c);
      i += 2;
    } else if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      out.push(Number.parseInt(text.slice(i + 2, i + 4), 16));
      i += 4;
    } else {
      throw ngError(
        'NG_ERR_ADDRESS_INVALID',
        `malformed escape at offset ${i} in socket address "${text}": use \\xHH (two hex digits) or \\\\`,
      );
    }
  }
  return Buffer.from(out);
}

/** Parses the contract's address syntax. Throws NG_ERR_ADDRESS_INVALID naming the problem. */
export function parseAddress(text: string): Address {
  if (text.startsWith('@')) {
    if (text === '@') return { kind: 'autobind' };
    const name = decodeEscapes(text.slice(1));
    if (name.length === 0) throw ngError('NG_ERR_ADDRESS_INVALID', `empty abstract socket name in "${text}"`);
    if (name.length > MAX_NAME_BYTES) {
      throw ngError(
        'NG_ERR_ADDRESS_INVALID',
        `abstract socket name is ${name.length} bytes, at most ${MAX_NAME_BYTES} fit: "${text}"`,
      );
    }
    return { kind: 'abstract', name };
  }
  if (text.startsWith('fd:')) {
    const digits = text.slice(3);
    if (!/^\d{1,9}$/.test(digits)) {
      throw ngError('NG_ERR_ADDRESS_INVALID', `"${text}" is not fd:N with N a file descriptor number`);
    }
    return { kind: 'fd', fd: Number(digits) };
  }
  if (text.length === 0) throw ngError('NG_ERR_ADDRESS_INVALID', 'empty socket address');
  if (text.includes('\0'))
    throw ngError(
      'NG_ERR_ADDRESS_INVALID',
      `socket path contains a NUL byte: "${formatBytes(Buffer.from(text))}"`,
    );
  const bytes = Buffer.byteLength(text);
  // A filesystem path needs its terminating NUL inside sun_path.
  if (bytes > MAX_NAME_BYTES) {
    throw ngError(
      'NG_ERR_ADDRESS_INVALID',
      `socket path is ${bytes} bytes, at most ${MAX_NAME_BYTES} fit: "${text}"`,
    );
  }
  return { kind: 'path', path: text };
}

/** Abstract name bytes as users see them: printable ASCII as is, `\\` and `\xHH` otherwise. */
export function formatBytes(name: Buffer): string {
  let out = '';
  for (const b of name) {
    if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function formatAddress(address: Address): string {
  switch (address.kind) {
    case 'abstract':
      return `@${formatBytes(address.name)}`;
    case 'autobind':
      return '@';
    case 'path':
      return address.path;
    case 'fd':
      return `fd:${address.fd}`;
  }
}

/** The bytes to put in sun_path (the native layer uses exactly this length). */
export function toSunPath(address: Address): Buffer {
  switch (address.kind) {
    case 'abstract':
      return Buffer.concat([Buffer.of(0), address.name]);
    case 'autobind':
      return Buffer.alloc(0);
    case 'path':
      return Buffer.from(address.path, 'utf8');
    case 'fd':
      throw ngError('NG_ERR_INVALID_OPTION', `fd:${address.fd} has no socket name`);
  }
}

/** The inverse of toSunPath, for what getsockname(2) reports. */
export function fromSunPath(sunPath: Buffer): Address {
  if (sunPath.length === 0) return { kind: 'autobind' };
  if (sunPath[0] === 0) return { kind: 'abstract', name: Buffer.from(sunPath.subarray(1)) };
  return { kind: 'path', path: sunPath.toString('utf8') };
}

/**
 * What curl needs to reach the address: `--abstract-unix-socket NAME` takes the name as a C
 * string, so names with bytes curl cannot pass (NUL, non-printable) get no curl form.
 */
export function curlArgs(address: Address): string | undefined {
  if (address.kind === 'path') return `--unix-socket ${shellQuote(address.path)}`;
  if (address.kind !== 'abstract') return undefined;
  if (address.name.some((b) => b < 0x20 || b >= 0x7f)) return undefined;
  return `--abstract-unix-socket ${shellQuote(address.name.toString('latin1'))}`;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
