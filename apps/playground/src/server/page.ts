// The page's built files (build.mjs writes page.js and chunks/*.js into one directory).
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Reads page.js and its chunks from a build directory, keyed by their URL path (without the `/`). */
export function readPage(directory: string): Record<string, string> {
  const files: Record<string, string> = { 'page.js': readFileSync(join(directory, 'page.js'), 'utf8') }
  const chunks = join(directory, 'chunks')
  if (existsSync(chunks))
    for (const name of readdirSync(chunks))
      if (name.endsWith('.js')) files[`chunks/${name}`] = readFileSync(join(chunks, name), 'utf8')
  return files
}
