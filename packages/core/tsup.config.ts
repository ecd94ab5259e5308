import { defineConfig } from 'tsup'

// MPPKIT_BUILD=js skips type declarations (seconds instead of minutes): `npm start` builds that way.
const declarations = process.env.MPPKIT_BUILD !== 'js'

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'server/index': 'src/server/index.ts',
    'client/index': 'src/client/index.ts',
    'testing/index': 'src/testing/index.ts',
    'bin/mppkit': 'src/bin/mppkit.ts',
    'bin/conformance-adapter': 'src/bin/conformance-adapter.ts',
  },
  format: ['esm'],
  dts: declarations && {
    entry: {
      index: 'src/index.ts',
      'server/index': 'src/server/index.ts',
      'client/index': 'src/client/index.ts',
      'testing/index': 'src/testing/index.ts',
    },
  },
  clean: true,
  sourcemap: true,
  target: 'node20',
  external: ['vitest'],
})
