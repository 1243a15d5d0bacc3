/**
 * Typed parsers (and the few serializers the decrypt rewrite needs) for the ISO BMFF,
 * CENC and PIFF boxes keywarden reads. Each takes a {@link Box} from src/media/box.ts.
 */
export * from './file-type.js';
export * from './headers.js';
export * from './sample-entry.js';
export * from './protection.js';
export * from './pssh.js';
export * from './sample-table.js';
export * from './movie-extends.js';
export * from './fragment.js';
export * from './sample-encryption.js';
export * from './aux-info.js';
export * from './sample-group.js';
export * from './segment-index.js';
