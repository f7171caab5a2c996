import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runtimeSpecifiers } from './assemble.mjs';

test('the import scan keeps what loads at run time and drops what tsx erases', () => {
  const code = `
import { a, type B } from 'values';
import type { C } from 'types-only';
import { type D, type E } from 'inline-types-only';
import f, { type G } from 'default-value';
import * as ns from "namespace";
import 'side-effect';
export { h } from './re-export.js';
export type { I } from './type-re-export.js';
import {
  j,
  k, // a comment
} from '@scope/multi-line/sub';
// import x from 'commented-out';
/* import y from 'block-commented'; */
const later = await import('./lazy.js');
const url = 'http://example.com';
import { z } from 'after-a-url';
`;
  assert.deepEqual(runtimeSpecifiers(code).sort(), [
    './lazy.js',
    './re-export.js',
    '@scope/multi-line/sub',
    'after-a-url',
    'default-value',
    'namespace',
    'side-effect',
    'values',
  ]);
});
