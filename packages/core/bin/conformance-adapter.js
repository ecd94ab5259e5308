#!/usr/bin/env node
// The `mppkit-conformance-adapter` command (conformance HARNESS_SPEC.md).
// This launcher is committed (not built) so that `npm install` links the bin in a fresh clone before
// anything is built; it runs the compiled CLI, or says how to build it.
import { existsSync } from 'node:fs'

const cli = new URL('../dist/bin/conformance-adapter.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write(
    'mppkit-conformance-adapter: @mppkit/core is not built yet (no dist/bin/conformance-adapter.js).\n' +
      'hint: run `npm run build` (or `npm start`) at the repository root, then try again.\n',
  )
  process.exit(1)
}
await import(cli.href)
