import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const packages = fileURLToPath(new URL('../../../', import.meta.url))

// The workspace packages' `exports` point at dist/; bundle their sources instead (as vitest does), so
// the test needs no build and checks the code as it is.
const sources: esbuild.Plugin = {
  name: 'mppkit-sources',
  setup(build) {
    build.onResolve({ filter: /^@mppkit\/(core|method-tempo)(\/client)?$/ }, (args) => {
      const [, pkg, sub] = /^@mppkit\/([^/]+)(?:\/(.+))?$/.exec(args.path)!
      return { path: `${packages}${pkg}/src/${sub ? `${sub}/index.ts` : 'index.ts'}` }
    })
  },
}

/**
 * Bundles a browser entry the way an app's bundler would for the web: `platform: 'browser'` (a `node:`
 * import anywhere on the path fails the build), ESM. Returns the code and the source files it holds.
 */
export async function bundleForBrowser(entry: string): Promise<{ code: string; inputs: string[] }> {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [sources],
  })
  return { code: result.outputFiles[0]!.text, inputs: Object.keys(result.metafile.inputs) }
}
