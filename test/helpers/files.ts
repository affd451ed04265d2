/** File-tree helpers shared by the route and end-to-end tests. */
import { readdirSync } from 'node:fs';

/** Every name under `dir`, recursively, hidden ones included, sorted. */
export function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}
