import { defineConfig } from 'tsup'

// JavaScript only: `tsc -p tsconfig.build.json` writes the declarations next to it (one .d.ts per source
// file, as tsc checks them), and `npm start` runs tsup alone.

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'server/index': 'src/server/index.ts',
    'client/index': 'src/client/index.ts',
    'client/node': 'src/client/node.ts',
    cli: 'src/cli.ts',
  },
  format: ['esm'],
  clean: true,
  sourcemap: true,
  target: 'node20',
})
