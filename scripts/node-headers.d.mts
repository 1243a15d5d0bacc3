/** The --nodedir to hand node-gyp, or undefined (scripts/node-headers.mjs). */
export function localNodeDir(): string | undefined;
