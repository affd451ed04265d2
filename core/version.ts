import { readFileSync } from 'node:fs';

/** The package version; the client bundle replaces this lookup at build time. */
function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'nullgate' && pkg.version) return pkg.version;
    } catch {
      // Not at this level: try the next.
    }
  }
  return '0.0.0';
}

/** Replaced by the client bundle's build (scripts/bundle.mjs), which has no package.json beside it. */
declare const NULLGATE_VERSION: string | undefined;

export const version: string = typeof NULLGATE_VERSION === 'string' ? NULLGATE_VERSION : readVersion();
