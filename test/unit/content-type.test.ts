import { describe, expect, it } from 'vitest';
import { contentTypeFor } from '../../routes/content-type.js';

describe('contentTypeFor: Content-Type from the extension (RFC 9110 §8.3)', () => {
  it.each<[string, string]>([
    ['a.txt', 'text/plain; charset=utf-8'],
    ['index.html', 'text/html; charset=utf-8'],
    ['style.css', 'text/css; charset=utf-8'],
    ['notes.md', 'text/markdown; charset=utf-8'],
    ['data.csv', 'text/csv; charset=utf-8'],
    ['data.json', 'application/json; charset=utf-8'],
    ['app.js', 'application/javascript; charset=utf-8'],
    ['mod.mjs', 'application/javascript; charset=utf-8'],
    ['UPPER.TXT', 'text/plain; charset=utf-8'],
    ['dir/sub/page.HTML', 'text/html; charset=utf-8'],
    ['photo.png', 'image/png'],
    ['photo.jpeg', 'image/jpeg'],
    ['doc.pdf', 'application/pdf'],
    ['archive.tar.gz', 'application/gzip'],
    ['archive.tar', 'application/x-tar'],
    ['image.svg', 'image/svg+xml'],
    ['movie.mp4', 'video/mp4'],
    ['font.woff2', 'font/woff2'],
    ['README', 'application/octet-stream'],
    ['.bashrc', 'application/octet-stream'],
    ['.json', 'application/octet-stream'],
    ['json', 'application/octet-stream'],
    ['txt', 'application/octet-stream'],
    ['file.', 'application/octet-stream'],
    ['file.unknownext', 'application/octet-stream'],
    ['weird\\name.txt', 'text/plain; charset=utf-8'],
    ['a.txt/README', 'application/octet-stream'],
    ['', 'application/octet-stream'],
  ])('%j → %s', (name, type) => {
    expect(contentTypeFor(name)).toBe(type);
  });
});
