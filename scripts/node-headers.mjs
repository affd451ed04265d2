// Where node-gyp finds Node's headers without downloading them (the machines this builds on
// reach the npm registry only): npm's `nodedir` config (npm_config_nodedir) wins; otherwise the
// running Node's own prefix when its headers are there.
import { existsSync } from 'node:fs';
import path from 'node:path';

export function nodeDir() {
  const fromNpm = process.env.npm_config_nodedir;
  if (fromNpm) return fromNpm;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
}
