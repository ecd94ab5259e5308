import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
// @ts-expect-error: build.mjs is plain JavaScript
import { buildPage, sizeLine } from '../build.mjs'
import { outputDirectory } from './chromium.js'

type Size = { bytes: number; gzipped: number }
type PageSize = Size & { files: Record<string, Size>; firstLoad: Size }

/** The goal: the whole app under 300 KB (300 000 bytes) gzipped, every chunk of every view summed. */
const budget = 300_000

describe('the page build', () => {
  it('keeps the whole app under 300 KB gzipped, and the first load smaller than the whole', async () => {
    const dist = join(outputDirectory, 'dist', 'size')
    const size = (await buildPage(dist)) as PageSize
    console.log(sizeLine(size))
    // The reported figures are the files on disk, gzipped.
    let total = 0
    for (const name of Object.keys(size.files))
      total += gzipSync(readFileSync(join(dist, name)), { level: 9 }).length
    expect(size.gzipped).toBe(total)
    expect(Object.keys(size.files)).toContain('page.js')
    expect(Object.keys(size.files).length).toBeGreaterThan(3)
    expect(size.gzipped).toBeLessThan(budget)
    expect(size.firstLoad.gzipped).toBeLessThan(size.gzipped)
  }, 60_000)
})
