export { ERRORS, type ErrorCode, type ErrorSpec } from './catalogue.js';
export { KeywardenError, kwError, isKeywardenError } from './keywarden-error.js';
