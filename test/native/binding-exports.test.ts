/**
 * The addon's real exports equal the NativeBinding interface (native/binding.ts), read from its
 * source with the TypeScript parser: a C++ entry point added, renamed or dropped without its
 * type (or a type left for a function that is gone) fails here, not at a call site.
 */
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { native } from '../../native/binding.js';

interface Member {
  readonly name: string;
  readonly method: boolean;
  /** The members of an object-literal type (fsConstants), when the member has one. */
  readonly fields: readonly string[] | undefined;
}

function interfaceMembers(file: string, name: string): Member[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name,
  );
  if (found === undefined) throw new Error(`${file}: no interface ${name}`);
  return found.members.map((m) => {
    if (m.name === undefined || !ts.isIdentifier(m.name))
      throw new Error(`${name}: a member without a plain name`);
    const type = ts.isPropertySignature(m) ? m.type : undefined;
    const fields =
      type !== undefined && ts.isTypeLiteralNode(type)
        ? type.members.map((f) => (f.name !== undefined && ts.isIdentifier(f.name) ? f.name.text : '?'))
        : undefined;
    return { name: m.name.text, method: ts.isMethodSignature(m), fields };
  });
}

const bindingSource = new URL('../../native/binding.ts', import.meta.url).pathname;
const members = interfaceMembers(bindingSource, 'NativeBinding');

describe('the addon exports exactly what NativeBinding declares', () => {
  it('the same names, no more and no fewer', () => {
    expect(Object.keys(native).sort()).toEqual(members.map((m) => m.name).sort());
  });

  it.each(members.map((m) => [m.name, m] as const))('%s has the declared kind', (name, member) => {
    const value: unknown = (native as unknown as Record<string, unknown>)[name];
    if (member.method) {
      expect(typeof value).toBe('function');
    } else {
      expect(typeof value).toBe('object');
      if (member.fields !== undefined)
        expect(Object.keys(value as object).sort()).toEqual([...member.fields].sort());
    }
  });
});
