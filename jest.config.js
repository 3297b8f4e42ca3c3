// Jest runs as native ESM (node --experimental-vm-modules): Nest 12 is ESM-only and cannot be
// loaded by CommonJS Jest on Node 20. Type errors are caught by `npm run typecheck`, so ts-jest
// only transpiles (isolatedModules in tsconfig.json), which keeps the suites fast.
const transform = { '^.+\\.ts$': ['ts-jest', { useESM: true }] };
const shared = {
  extensionsToTreatAsEsm: ['.ts'],
  transform,
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
};

export default {
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts'] },
    { ...shared, displayName: 'integration', testMatch: ['<rootDir>/test/**/*.test.ts'] },
  ],
};
