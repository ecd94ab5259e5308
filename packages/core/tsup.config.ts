import { defineConfig } from 'tsup'

// JavaScript only: `tsc -p tsconfig.build.json` writes the declarations next to it (one .d.ts per source
// file, as tsc checks them), and `npm start` runs tsup alone.

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'server/index': 'src/server/index.ts',
    'client/index': 'src/client/index.ts',
    'client/node': 'src/client/node.ts',
    'testing/index': 'src/testing/index.ts',
    'cli/index': 'src/cli/index.ts',
    'bin/mppkit': 'src/bin/mppkit.ts',
    'bin/conformance-adapter': 'src/bin/conformance-adapter.ts',
  },
  format: ['esm'],
  // `npm start` rebuilds the JavaScript alone and keeps the declarations of an earlier full build.
  clean: process.env.MPPKIT_KEEP_DIST !== '1',
  sourcemap: true,
  target: 'node20',
  external: ['vitest'],
})
