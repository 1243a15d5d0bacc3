export { splitSegments, type Segments } from '../../src/media/segments.js';
