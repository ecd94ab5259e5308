// `npm run bench`: runs every packages/*/bench/*.bench.mjs against the built packages and prints
// ops/s for mppkit and the reference SDK (mppx@0.11.0) measured in the same run, with the ratio.
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const files = []
for (const pkg of readdirSync(`${root}packages`)) {
  let entries = []
  try {
    entries = readdirSync(`${root}packages/${pkg}/bench`)
  } catch {
    continue
  }
  for (const entry of entries.filter((e) => e.endsWith('.bench.mjs')).sort())
    files.push(`${root}packages/${pkg}/bench/${entry}`)
}
const only = process.argv[2]
const fmt = (n) => (n === undefined ? '-' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2))
let failed = false
console.log(`node ${process.version}, ${process.arch}; ops/s are medians of interleaved rounds\n`)
for (const file of files) {
  if (only && !file.includes(only)) continue
  const { run } = await import(pathToFileURL(file).href)
  const results = await run()
  for (const r of results) {
    if (r.text) {
      console.log(`${r.name}: ${r.text}`)
      continue
    }
    const ratio = r.mppx ? r.mppkit / r.mppx : undefined
    const lowerIsBetter = r.unit === 'ms'
    const effective = ratio === undefined ? undefined : lowerIsBetter ? 1 / ratio : ratio
    const verdict =
      r.target === undefined || effective === undefined
        ? ''
        : effective >= r.target
          ? `  ✓ target ${r.target}×`
          : `  ✗ target ${r.target}×`
    if (verdict.includes('✗')) failed = true
    const unit = r.unit ?? 'ops/s'
    console.log(
      `${r.name.padEnd(40)} mppkit ${fmt(r.mppkit).padStart(10)} ${unit}   mppx ${fmt(r.mppx).padStart(10)} ${unit}   ratio ${effective === undefined ? '-' : `${effective.toFixed(2)}×`}${verdict}`,
    )
  }
}
if (failed) console.log('\nSome targets were not met (see ✗ above).')
