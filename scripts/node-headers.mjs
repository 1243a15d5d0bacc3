// Where node-gyp finds Node's headers without a download: npm_config_nodedir if set, else
// this Node's own install prefix when its include/node holds a complete set (node_api.h,
// common.gypi and the bundled OpenSSL headers). Undefined: let node-gyp download them.
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The --nodedir to hand node-gyp, or undefined. */
export function localNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const headers = path.join(prefix, 'include', 'node');
  const complete = ['node_api.h', 'common.gypi', path.join('openssl', 'evp.h')].every((f) =>
    existsSync(path.join(headers, f)),
  );
  return complete ? prefix : undefined;
}
