import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'

// The client path (`@mppkit/core/client` and the codecs it parses and formats with) runs in browsers:
// bundled for the browser with nothing external, it must import no `node:` module and touch `Buffer`
// only through a guarded `globalThis.Buffer` look-up (browsers have none).

const src = fileURLToPath(new URL('.', import.meta.url))

const bundle = async (options: { entry?: string; contents?: string }) => {
  const result = await build({
    ...(options.entry !== undefined
      ? { entryPoints: [options.entry] }
      : { stdin: { contents: options.contents!, resolveDir: src, loader: 'ts' } }),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
  })
  return result.outputFiles[0]!.text
}

const problems = (code: string) => {
  const found: string[] = []
  for (const match of code.matchAll(/["'`]node:[\w/]+["'`]|\brequire\(/g)) found.push(match[0])
  for (const match of code.matchAll(/\bBuffer\b/g)) {
    const before = code.slice(Math.max(0, match.index - 'globalThis.'.length), match.index)
    if (before !== 'globalThis.') found.push(code.slice(Math.max(0, match.index - 30), match.index + 10))
  }
  return found
}

describe('the browser bundle', () => {
  it('of the codecs the client uses has no node: import and no unguarded Buffer', async () => {
    const code = await bundle({
      contents: [
        'Challenge',
        'Credential',
        'Receipt',
        'Base64url',
        'Jcs',
        'Expires',
        'AcceptPayment',
        'Errors',
      ]
        .map((name) => `export * as ${name} from './${name}.js'`)
        .join('\n'),
    })
    expect(code).toContain('globalThis.Buffer')
    expect(problems(code)).toEqual([])
  })
  it('of @mppkit/core/client has no node: import and no unguarded Buffer', async () => {
    const code = await bundle({ entry: `${src}client/index.ts` })
    expect(problems(code)).toEqual([])
  })
  it('catches what it looks for', () => {
    expect(problems(`import "node:crypto"; const b = Buffer.from('x'); globalThis.Buffer`)).toHaveLength(2)
  })
})
