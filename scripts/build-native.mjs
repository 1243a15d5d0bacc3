#!/usr/bin/env node
// Builds the C++ addon with node-gyp.
//
// Offline machines cannot download Node's headers, but every Node install ships them
// (and its bundled OpenSSL headers) under <prefix>/include/node. When they are there we
// hand node-gyp `--nodedir <prefix>`; when they are not (an unusual Node build), node-gyp
// falls back to its normal download, so an online machine still builds.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { localNodeDir } from './node-headers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const rebuild = process.argv.includes('--rebuild');

function prebuiltAddon() {
  try {
    return require('node-gyp-build').path(root);
  } catch {
    return undefined;
  }
}

if (!rebuild) {
  const found = prebuiltAddon();
  if (found && !found.includes(`${path.sep}build${path.sep}`)) {
    console.log(`keywarden: using prebuilt addon ${path.relative(root, found)}`);
    process.exit(0);
  }
}

const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
const args = [nodeGyp, 'rebuild', `--jobs=${process.env.JOBS ?? 'max'}`];
const nodedir = localNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(
    [
      'keywarden: building the native addon failed.',
      '  Needs: python3, make and a C++17 compiler (g++ or clang++).',
      '  Node headers: found at ' + (nodedir ?? '(none: node-gyp will try to download them)'),
      '  Offline? set npm_config_nodedir to a directory holding include/node/node_api.h.',
    ].join('\n'),
  );
  process.exit(result.status ?? 1);
}
