export * from './constants.js';
export * from './errors.js';
export * from './names.js';
export * from './frame.js';
export * from './message.js';
export * from './commands.js';
