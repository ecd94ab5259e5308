import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url))

// Tests that time the user-facing wall clock of a whole program (the playground issue asks for a test
// that a fresh `npm start` serves the page within 10 s of its build; the devnet issue, that its four
// rails start in under 3 s). With three test files at a time on
// two cores the same start-up took 23 s in CI against 2.2 s on an idle machine, so these run in a second
// group, alone, after every other file has finished.
const alone = ['apps/playground/test/start.test.ts', 'packages/devnet/test/startup-time.test.ts']
const everything = [
  'packages/*/src/**/*.test.ts',
  'packages/*/test/**/*.test.ts',
  'examples/**/*.test.ts',
  'apps/*/src/**/*.test.ts',
  'apps/*/test/**/*.test.ts',
  'scripts/**/*.test.ts',
]

// Tests run against package sources (aliases below), so a change is tested without a rebuild.
// Integration tests that need local nodes live in `test/` folders and share the same runner.
export default defineConfig({
  resolve: {
    alias: [
      {
        find: /^@mppkit\/core\/(server|client|testing)$/,
        replacement: src('./packages/core/src/$1/index.ts'),
      },
      {
        find: /^@mppkit\/core\/client\/node$/,
        replacement: src('./packages/core/src/client/node.ts'),
      },
      { find: /^@mppkit\/core\/cli$/, replacement: src('./packages/core/src/cli/index.ts') },
      { find: /^@mppkit\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@mppkit\/devnet$/, replacement: src('./packages/devnet/src/index.ts') },
      {
        find: /^@mppkit\/method-tempo\/(server|client)$/,
        replacement: src('./packages/method-tempo/src/$1/index.ts'),
      },
      { find: /^@mppkit\/method-tempo\/cli$/, replacement: src('./packages/method-tempo/src/cli.ts') },
      {
        find: /^@mppkit\/method-tempo\/client\/node$/,
        replacement: src('./packages/method-tempo/src/client/node.ts'),
      },
      {
        find: /^@mppkit\/method-lightning\/(server|client)$/,
        replacement: src('./packages/method-lightning/src/$1/index.ts'),
      },
      {
        find: /^@mppkit\/method-lightning\/client\/node$/,
        replacement: src('./packages/method-lightning/src/client/node.ts'),
      },
      {
        find: /^@mppkit\/method-lightning\/cli$/,
        replacement: src('./packages/method-lightning/src/cli.ts'),
      },
      { find: /^@mppkit\/method-lightning$/, replacement: src('./packages/method-lightning/src/index.ts') },
      { find: /^@mppkit\/method-tempo$/, replacement: src('./packages/method-tempo/src/index.ts') },
      {
        find: /^@mppkit\/method-solana\/(server|client)$/,
        replacement: src('./packages/method-solana/src/$1/index.ts'),
      },
      { find: /^@mppkit\/method-solana\/cli$/, replacement: src('./packages/method-solana/src/cli.ts') },
      { find: /^@mppkit\/method-solana$/, replacement: src('./packages/method-solana/src/index.ts') },
      {
        find: /^@mppkit\/x402-compat\/(server|client)$/,
        replacement: src('./packages/x402-compat/src/$1/index.ts'),
      },
      { find: /^@mppkit\/x402-compat$/, replacement: src('./packages/x402-compat/src/index.ts') },
      {
        find: /^@mppkit\/mcp\/(server|client)$/,
        replacement: src('./packages/mcp/src/$1/index.ts'),
      },
      { find: /^@mppkit\/mcp$/, replacement: src('./packages/mcp/src/index.ts') },
      { find: /^@mppkit\/discovery$/, replacement: src('./packages/discovery/src/index.ts') },
      {
        find: /^@mppkit\/method-stripe\/(server|client)$/,
        replacement: src('./packages/method-stripe/src/$1/index.ts'),
      },
      { find: /^@mppkit\/method-stripe\/cli$/, replacement: src('./packages/method-stripe/src/cli.ts') },
      { find: /^@mppkit\/method-stripe$/, replacement: src('./packages/method-stripe/src/index.ts') },
      { find: /^@mppkit\/store-redis$/, replacement: src('./packages/store-redis/src/index.ts') },
      { find: /^@mppkit\/store-postgres$/, replacement: src('./packages/store-postgres/src/index.ts') },
    ],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One test file more than there are cores (vitest's default is one less), at most 4: most files wait
    // on local nodes, child processes or the network stack. On a 2-core machine three files at a time
    // kept the cores 88% busy instead of 82% with two, for the same CPU time: 530 s instead of 574 s.
    // Each file keeps its own process (`forks`, isolated): `threads` shares one process between files
    // (a file that counts its own child processes sees another's), and `isolate: false` lets one file's
    // globals (@hono/node-server replaces `Response`) leak into the next.
    maxWorkers: Math.min(4, availableParallelism() + 1),
    setupFiles: ['./scripts/fast-check-seed.ts'],
    reporters: ['default', './scripts/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: everything,
          exclude: [...configDefaults.exclude, ...alone],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'alone', include: alone, sequence: { groupOrder: 1 } } },
    ],
  },
})
