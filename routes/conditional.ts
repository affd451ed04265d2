/**
 * Conditional requests (RFC 9110 §13) as pure functions: entity-tag comparison (§8.8.3.2),
 * HTTP-date parsing (§5.6.7), precondition evaluation in the order of §13.2.2, and If-Range
 * (§13.1.5).
 */

export interface Representation {
  /** Whether the target currently has a representation (the file exists). */
  readonly exists: boolean;
  /** Its entity-tag as sent in `ETag`, quotes included (and `W/` if weak). */
  readonly etag?: string | undefined;
  /** Its modification time, as a Date or milliseconds since the epoch. */
  readonly lastModified?: Date | number | undefined;
}

export type PreconditionResult = 'proceed' | 'not-modified' | 'precondition-failed';

/** Request headers as Node and Fastify give them (lower-case names). */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

interface EntityTag {
  readonly weak: boolean;
  /** The opaque-tag, quotes included (§8.8.3). */
  readonly opaque: string;
}

function header(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  // §5.3: several field lines of a list-based field combine into one comma-separated value.
  return Array.isArray(value) ? value.join(', ') : value;
}

// §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text.
const ENTITY_TAG = /^(W\/)?("[\x21\x23-\x7e\x80-\xff]*")/;

/** Parses one entity-tag (a stored ETag or an If-Range value); undefined if it is not one. */
export function parseEntityTag(value: string): EntityTag | undefined {
  const m = ENTITY_TAG.exec(value.trim());
  if (!m || m[0].length !== value.trim().length) return undefined;
  return { weak: m[1] !== undefined, opaque: m[2]! };
}

/**
 * Parses `If-Match`/`If-None-Match` (§13.1.1, §13.1.2): `*` or a list of entity-tags. Commas may
 * sit inside an opaque-tag, so the list is scanned rather than split. Members that are not
 * entity-tags are skipped: they can never match, which is the conservative outcome for both
 * fields (If-Match fails, If-None-Match passes).
 */
export function parseEntityTagList(value: string): '*' | EntityTag[] {
  if (value.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  let rest = value;
  while (rest.length > 0) {
    rest = rest.replace(/^[\s,]+/, '');
    if (rest === '') break;
    const m = ENTITY_TAG.exec(rest);
    if (m) {
      tags.push({ weak: m[1] !== undefined, opaque: m[2]! });
      rest = rest.slice(m[0].length);
    } else {
      const comma = rest.indexOf(',');
      rest = comma === -1 ? '' : rest.slice(comma + 1);
    }
  }
  return tags;
}

/** §8.8.3.2 strong comparison: both strong and the opaque-tags identical octet by octet. */
export function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

/** §8.8.3.2 weak comparison: the opaque-tags identical, either or both may be weak. */
export function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
// §5.6.7, the three forms a recipient must accept; all are UTC (asctime has no zone but is GMT).
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

function utc(year: number, month: string, day: number, h: number, m: number, s: number): number | undefined {
  const mon = MONTHS.indexOf(month);
  // §5.6.7 second = 00-60 (leap second); Date.UTC folds 60 into the next minute, good enough.
  if (day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return undefined;
  const ms = Date.UTC(year, mon, day, h, m, s);
  // Reject dates that Date.UTC would roll over, like 31 Feb.
  if (new Date(ms).getUTCDate() !== day && s !== 60) return undefined;
  return ms;
}

/**
 * Parses an HTTP-date (§5.6.7): IMF-fixdate, and the obsolete rfc850-date and asctime-date that
 * recipients must still accept. Returns milliseconds since the epoch, or undefined when the value
 * is not exactly one HTTP-date (§13.1.3/§13.1.4 then say to ignore the field). Date.parse is not
 * used: it accepts far more than HTTP-date and reads asctime as local time.
 */
export function parseHttpDate(value: string, now: Date = new Date()): number | undefined {
  const text = value.trim();
  let m = IMF_FIXDATE.exec(text);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850_DATE.exec(text);
  if (m) {
    // §5.6.7: a two-digit year more than 50 years in the future is the most recent past year
    // with the same last two digits.
    const thisYear = now.getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    return utc(year, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = ASCTIME_DATE.exec(text);
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}

/** HTTP-dates have one-second resolution (§5.6.7), so file times are compared in whole seconds. */
function seconds(time: Date | number): number {
  return Math.floor((typeof time === 'number' ? time : time.getTime()) / 1000);
}

function currentTag(rep: Representation): EntityTag | undefined {
  return rep.exists && rep.etag !== undefined ? parseEntityTag(rep.etag) : undefined;
}

function lastModifiedSeconds(rep: Representation): number | undefined {
  return rep.exists && rep.lastModified !== undefined ? seconds(rep.lastModified) : undefined;
}

/** §13.1.1: true if `*` and a representation exists, or a listed tag strongly matches. */
function ifMatchPasses(value: string, rep: Representation): boolean {
  const list = parseEntityTagList(value);
  if (list === '*') return rep.exists;
  const tag = currentTag(rep);
  return tag !== undefined && list.some((t) => strongMatch(t, tag));
}

/** §13.1.2: false if `*` and a representation exists, or a listed tag weakly matches. */
function ifNoneMatchPasses(value: string, rep: Representation): boolean {
  const list = parseEntityTagList(value);
  if (list === '*') return !rep.exists;
  const tag = currentTag(rep);
  return tag === undefined || !list.some((t) => weakMatch(t, tag));
}

/**
 * Evaluates the preconditions of a request in the order of RFC 9110 §13.2.2:
 *
 * 1. If-Match: false → 412.
 * 2. else If-Unmodified-Since: false (modified after the date) → 412. Ignored when the value is
 *    not one valid HTTP-date or the file has no modification time (§13.1.4).
 * 3. If-None-Match: false → 304 for GET/HEAD, 412 for any other method.
 * 4. else, GET/HEAD only, If-Modified-Since: false (not modified since) → 304. Ignored when the
 *    date is invalid or the file has no modification time (§13.1.3).
 * 5. If-Range is separate: see ifRangeAllows.
 *
 * §13.2.1: preconditions are ignored when the response without them would not be 2xx or 412, so
 * the route answers 404 for a GET of a missing file BEFORE calling this; for PUT/MKCOL/DELETE of
 * a missing target, pass `{ exists: false }` (If-Match: * then fails, If-None-Match: * passes).
 */
export function evaluatePreconditions(
  method: string,
  headers: RequestHeaders,
  rep: Representation,
): PreconditionResult {
  const safe = method === 'GET' || method === 'HEAD';

  const ifMatch = header(headers, 'if-match');
  if (ifMatch !== undefined) {
    if (!ifMatchPasses(ifMatch, rep)) return 'precondition-failed';
  } else {
    const ifUnmodifiedSince = header(headers, 'if-unmodified-since');
    const mtime = lastModifiedSeconds(rep);
    if (ifUnmodifiedSince !== undefined && mtime !== undefined) {
      const date = parseHttpDate(ifUnmodifiedSince);
      if (date !== undefined && mtime > seconds(date)) return 'precondition-failed';
    }
  }

  const ifNoneMatch = header(headers, 'if-none-match');
  if (ifNoneMatch !== undefined) {
    if (!ifNoneMatchPasses(ifNoneMatch, rep)) return safe ? 'not-modified' : 'precondition-failed';
  } else if (safe) {
    const ifModifiedSince = header(headers, 'if-modified-since');
    const mtime = lastModifiedSeconds(rep);
    if (ifModifiedSince !== undefined && mtime !== undefined) {
      const date = parseHttpDate(ifModifiedSince);
      if (date !== undefined && mtime <= seconds(date)) return 'not-modified';
    }
  }

  return 'proceed';
}

/**
 * RFC 9110 §13.1.5 If-Range: true means "honour the Range header", false means "ignore Range and
 * send the whole representation with 200". Without If-Range it is true. An entity-tag must match
 * strongly (a weak tag never does); an HTTP-date must equal the Last-Modified time to the second;
 * anything else, including a value that is neither, is false, which is the safe answer (the
 * client gets a complete, current file instead of splicing parts of two versions).
 * Only meaningful when the request carries Range (§13.1.5 says to ignore If-Range otherwise).
 */
export function ifRangeAllows(headers: RequestHeaders, rep: Representation): boolean {
  const value = header(headers, 'if-range');
  if (value === undefined) return true;
  const text = value.trim();
  // §13.1.5: an entity-tag is told from an HTTP-date by its leading DQUOTE (or W/).
  if (text.startsWith('"') || text.startsWith('W/')) {
    const given = parseEntityTag(text);
    const tag = currentTag(rep);
    return given !== undefined && tag !== undefined && strongMatch(given, tag);
  }
  const date = parseHttpDate(text);
  const mtime = lastModifiedSeconds(rep);
  return date !== undefined && mtime !== undefined && seconds(date) === mtime;
}
