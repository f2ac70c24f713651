// `npm run mutation`: Stryker over the pure and actor code and the two
// byte-level pieces of src/ (not part of CI or `npm test`). Made as fast as
// it goes on 2 shared cores: per-test coverage (each mutant runs only the
// tests that reach it), 2 workers, and only the in-process test files
// (stryker.vitest.config.ts): the child-process suites are too slow to run
// per mutant. A subset: `npm run mutation -- --mutate 'protocol/**/*.ts'`; quicker still, with the
// protocol unit tests alone: `MUTATION_SUITES=protocol npm run mutation -- --mutate 'protocol/**/*.ts'`
// (likewise MUTATION_SUITES=store with --mutate src/store.ts).
// Results: docs/mutation.md.
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'stryker.vitest.config.ts', related: false },
  coverageAnalysis: 'perTest',
  concurrency: 2,
  mutate: ['protocol/**/*.ts', 'actors/**/*.ts', 'src/relay-pipe.ts', 'src/store.ts'],
  ignoreStatic: true,
  timeoutMS: 10_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  // Our tsconfig has no extends/references to rewrite for the sandbox, and Stryker's rewriter needs
  // the JavaScript API of TypeScript, which TypeScript 7 (native) no longer ships: point it at no file.
  tsconfigFile: 'no-tsconfig-to-rewrite.json',
  cleanTempDir: 'always'
}
