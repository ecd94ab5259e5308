// Test helper of the multi-process tests: bundles a child server process's TypeScript entry, with the
// @mppkit packages it imports taken from their sources (as vitest runs them), into one ESM file that
// `node` runs. Other packages stay external and resolve from the repo's node_modules. Used by
// packages/store-redis/test/multiprocess, packages/method-lightning/test/multiprocess and
// packages/x402-compat/test/multiprocess.test.ts.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('../', import.meta.url))

/** `@mppkit/<package>[/<entry>]` → its source file, or undefined for another package. */
function sourceOf(specifier: string): string | undefined {
  const match = /^@mppkit\/([^/]+)(?:\/(.+))?$/.exec(specifier)
  if (!match) return undefined
  const [, name, entry] = match
  const base = `${root}packages/${name}/src/`
  if (!entry) return `${base}index.ts`
  return existsSync(`${base}${entry}/index.ts`) ? `${base}${entry}/index.ts` : `${base}${entry}.ts`
}

/**
 * Bundles `entry` (a file path, or `{ contents }` of a TypeScript module resolved from the repo root) into
 * `node_modules/.cache/mppkit-multiprocess/` and returns the bundle's path.
 */
export async function bundleChild(entry: string | { contents: string }): Promise<string> {
  // Inside the repo's node_modules so that the external packages resolve from the bundle.
  const directory = `${root}node_modules/.cache/mppkit-multiprocess`
  mkdirSync(directory, { recursive: true })
  const outfile = `${directory}/server-${randomBytes(6).toString('hex')}.mjs`
  await build({
    ...(typeof entry === 'string'
      ? { entryPoints: [entry] }
      : { stdin: { contents: entry.contents, resolveDir: root, loader: 'ts' as const } }),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    logLevel: 'silent',
    plugins: [
      {
        name: 'mppkit-sources',
        setup(builder) {
          builder.onResolve({ filter: /^[^./]/ }, (args) => {
            const source = sourceOf(args.path)
            if (source) return { path: source }
            if (args.path.startsWith('/')) return undefined
            return { external: true }
          })
        },
      },
    ],
  })
  return outfile
}
