#!/usr/bin/env node
// The `mppkit` command.
// This launcher is committed (not built) so that `npm install` links the bin in a fresh clone before
// anything is built; it runs the compiled CLI, or says how to build it.
import { existsSync } from 'node:fs'

const cli = new URL('../dist/bin/mppkit.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write(
    'mppkit: @mppkit/core is not built yet (no dist/bin/mppkit.js).\n' +
      'hint: run `npm run build` (or `npm start`) at the repository root, then try again.\n',
  )
  process.exit(1)
}
await import(cli.href)
