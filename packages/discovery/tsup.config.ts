import { defineConfig } from 'tsup'

// MPPKIT_BUILD=js skips type declarations (seconds instead of minutes): `npm start` builds that way.
const declarations = process.env.MPPKIT_BUILD !== 'js'

export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm'],
  dts: declarations,
  clean: true,
  sourcemap: true,
  target: 'node20',
})
