/**
 * keywarden as a library: the device agent (licenses, sessions, domains), the coded errors,
 * and the media tools. The reference head-end is not part of it (`keywarden/headend`
 * needs the optional packages).
 */
export * from './agent/index.js';
export { isKeywardenError, KeywardenError, ERRORS, type ErrorCode } from './errors/index.js';
export { decryptFile, decryptBytes, type DecryptFileOptions } from './media/decrypt/index.js';
export { packageFile } from './media/package/packager.js';
export { inspectFile } from './media/inspect.js';
