/**
 * A directory listing (`{"path":"/dir/","entries":[{…},{…}]}`) read as it streams in, one entry
 * at a time, so that no server can make the client hold more than one entry: the server streams
 * listings of any size, and a hostile one can send an endless one (it grew `ls` to 1.6 GB).
 *
 * Written by hand because streaming JSON parsers bound nothing per token: one endless string
 * is as bad as an endless array. This scanner only finds where each entry object starts and
 * ends (tracking strings, escapes and nesting byte by byte: every structural character of JSON
 * is ASCII, so UTF-8 needs no decoding here), bounds its size, and hands the bytes of each
 * entry, and of the top-level keys and `path`, to JSON.parse. Everything else of the document
 * (unknown top-level members) is skipped without being kept.
 */

/** Bytes of one entry (or one top-level key or `path`) at most: a name is at most 255 bytes. */
export const MAX_ENTRY_BYTES = 64 * 1024;
/** Nesting at most: entries are flat objects; room for a few nested fields a later server may add. */
const MAX_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

/** What a capture is for: a top-level key, the value of `path`, or one entry of `entries`. */
type CaptureKind = 'key' | 'path' | 'entry';

/** The document is not a listing (the message says why; the caller adds the request). */
export class ListingFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListingFormatError';
  }
}

export class ListingSplitter {
  /** The listing's `path`, once its value has arrived. */
  path: string | undefined;
  /** True once the top-level object has closed: the rest of the body is not read. */
  done = false;
  /** True once an `entries` array was found. */
  sawEntries = false;

  readonly #maxEntryBytes: number;
  /** Open containers, innermost last: OPEN_OBJECT or OPEN_ARRAY. */
  readonly #stack: number[] = [];
  #inString = false;
  #escaped = false;
  /** In the top-level object: the next string is a key (after `{` or `,`), not a value. */
  #expectKey = false;
  /** The top-level key whose value is being read. */
  #key: string | undefined;
  /** True while inside the `entries` array (it sits at depth 2). */
  #inEntries = false;
  #capture: CaptureKind | undefined;
  #captured: Buffer[] = [];
  #capturedBytes = 0;
  /** Where the capture starts in the current chunk (0 when it began in an earlier chunk). */
  #captureStart = 0;

  constructor(maxEntryBytes = MAX_ENTRY_BYTES) {
    this.#maxEntryBytes = maxEntryBytes;
  }

  /** Scans one chunk; returns the entries it completed (parsed, not yet checked). */
  push(chunk: Buffer): unknown[] {
    const out: unknown[] = [];
    if (this.done) return out;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (b === BACKSLASH) this.#escaped = true;
        else if (b === QUOTE) {
          this.#inString = false;
          if (this.#capture === 'key' || this.#capture === 'path') this.#finish(chunk, i + 1);
        }
        continue;
      }
      const depth = this.#stack.length;
      switch (b) {
        case 0x20:
        case 0x09:
        case 0x0a:
        case 0x0d:
          break;
        case QUOTE:
          this.#inString = true;
          if (depth === 0) throw new ListingFormatError('not a JSON object');
          if (depth === 1) {
            if (this.#expectKey) this.#start('key', i);
            else if (this.#key === 'path') this.#start('path', i);
          } else if (depth === 2 && this.#inEntries) {
            throw new ListingFormatError('an entry is not an object');
          }
          break;
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          if (depth === 0 && b !== OPEN_OBJECT) throw new ListingFormatError('not a JSON object');
          if (depth === 1 && this.#key === 'entries') {
            if (b !== OPEN_ARRAY) throw new ListingFormatError('"entries" is not an array');
            this.#inEntries = true;
            this.sawEntries = true;
          } else if (depth === 2 && this.#inEntries) {
            if (b !== OPEN_OBJECT) throw new ListingFormatError('an entry is not an object');
            this.#start('entry', i);
          }
          if (depth >= MAX_DEPTH) throw new ListingFormatError(`nested deeper than ${MAX_DEPTH} levels`);
          this.#stack.push(b);
          if (depth === 0) this.#expectKey = true;
          break;
        case CLOSE_OBJECT:
        case CLOSE_ARRAY: {
          const open = this.#stack.pop();
          if (open !== (b === CLOSE_OBJECT ? OPEN_OBJECT : OPEN_ARRAY)) {
            throw new ListingFormatError('mismatched brackets');
          }
          if (depth === 3 && this.#inEntries) out.push(this.#finish(chunk, i + 1));
          else if (depth === 2 && this.#inEntries) this.#inEntries = false;
          else if (depth === 1) {
            this.done = true;
            return out;
          }
          break;
        }
        case COLON:
          if (depth === 1) this.#expectKey = false;
          break;
        case COMMA:
          if (depth === 1) {
            this.#expectKey = true;
            this.#key = undefined;
          }
          break;
        default:
          // A number, true, false or null: only where the document allows any value.
          if (depth === 0) throw new ListingFormatError('not a JSON object');
          if (depth === 2 && this.#inEntries) throw new ListingFormatError('an entry is not an object');
      }
    }
    if (this.#capture !== undefined) {
      this.#keep(chunk.subarray(this.#captureStart));
      this.#captureStart = 0;
    }
    return out;
  }

  /** The body ended: throws unless it held a complete listing. */
  end(): void {
    if (!this.done) throw new ListingFormatError('the listing ends before it is complete');
    if (!this.sawEntries) throw new ListingFormatError('no "entries" array');
  }

  #start(kind: CaptureKind, at: number): void {
    this.#capture = kind;
    this.#captured = [];
    this.#capturedBytes = 0;
    this.#captureStart = at;
  }

  #keep(bytes: Buffer): void {
    this.#capturedBytes += bytes.length;
    if (this.#capturedBytes > this.#maxEntryBytes) {
      const what = this.#capture === 'entry' ? 'an entry' : 'a field';
      throw new ListingFormatError(`${what} is larger than ${this.#maxEntryBytes} bytes`);
    }
    // A copy: the chunk's memory is the transport's to reuse.
    this.#captured.push(Buffer.from(bytes));
  }

  /** Ends the capture at `end` of `chunk` and returns its parsed value (keys and path are kept here). */
  #finish(chunk: Buffer, end: number): unknown {
    this.#keep(chunk.subarray(this.#captureStart, end));
    const kind = this.#capture;
    const text = Buffer.concat(this.#captured, this.#capturedBytes).toString('utf8');
    this.#capture = undefined;
    this.#captured = [];
    this.#capturedBytes = 0;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ListingFormatError(kind === 'entry' ? 'an entry is not valid JSON' : 'not valid JSON');
    }
    if (kind === 'key') this.#key = value as string;
    else if (kind === 'path') this.path = value as string;
    return value;
  }
}
