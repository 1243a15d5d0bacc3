#!/usr/bin/env node
// Generates the protobuf code the build needs: a static protobufjs module (JS) and its
// TypeScript declarations, from every .proto file under proto/. Output goes to
// src/protocol/generated/ (not committed: the build makes it).
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const out = path.join(root, 'src', 'protocol', 'generated');

// `--copy-to DIR`: after tsc, put the generated JS (which tsc does not copy) beside the
// compiled code.
const copyAt = process.argv.indexOf('--copy-to');
if (copyAt > 0) {
  const dest = path.resolve(root, process.argv[copyAt + 1] ?? 'dist/protocol/generated');
  mkdirSync(dest, { recursive: true });
  for (const f of ['proto.js', 'proto.d.ts']) copyFileSync(path.join(out, f), path.join(dest, f));
  process.exit(0);
}
mkdirSync(out, { recursive: true });

const protos = readdirSync(path.join(root, 'proto'))
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => path.join(root, 'proto', f));

const pbjs = require('protobufjs-cli/pbjs');
const pbts = require('protobufjs-cli/pbts');
const js = path.join(out, 'proto.js');
const dts = path.join(out, 'proto.d.ts');

function run(tool, args) {
  return new Promise((resolve, reject) =>
    tool.main(args, (err) => (err ? reject(err) : resolve())),
  );
}

await run(pbjs, [
  '-t',
  'static-module',
  '-w',
  'es6',
  '--force-number',
  '--no-beautify',
  '-o',
  js,
  ...protos,
]);
// Node's ESM loader needs the file extension, and protobufjs/minimal is CommonJS whose
// named exports Node cannot detect, so import its default export instead.
const code = readFileSync(js, 'utf8').replace(
  /import \* as \$protobuf from "protobufjs\/minimal";/,
  'import $protobuf from "protobufjs/minimal.js";',
);
writeFileSync(js, code);
await run(pbts, ['-o', dts, js]);
console.log(`keywarden: generated ${path.relative(root, js)} from ${protos.length} .proto file(s)`);
