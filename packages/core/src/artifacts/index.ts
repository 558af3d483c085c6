export * from './protocol.ts';
export * from './folder.ts';
