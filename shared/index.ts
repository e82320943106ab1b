export * from './errors.js';
export * from './stage.js';
export * from './protocol.js';
