import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { ChildConfig } from './child.js'

const root = fileURLToPath(new URL('../../../../', import.meta.url))
// The mppkit packages the server process uses, bundled from their sources (as the tests run them).
const sources: Record<string, string> = {
  '@mppkit/core': 'packages/core/src/index.ts',
  '@mppkit/core/server': 'packages/core/src/server/index.ts',
  '@mppkit/core/client': 'packages/core/src/client/index.ts',
  '@mppkit/store-redis': 'packages/store-redis/src/index.ts',
  '@mppkit/store-postgres': 'packages/store-postgres/src/index.ts',
}

let bundled: Promise<string> | undefined

/** Bundles `child.ts` (core, the stores and this method from their sources) into one ESM file, once. */
export function bundle(): Promise<string> {
  bundled ??= (async () => {
    // Inside the repo's node_modules so the external packages (lightning, ioredis, pg, zod) resolve.
    const directory = `${root}node_modules/.cache/mppkit-lightning-multiprocess`
    mkdirSync(directory, { recursive: true })
    const outfile = `${directory}/server-${randomBytes(6).toString('hex')}.mjs`
    await build({
      entryPoints: [fileURLToPath(new URL('./child.ts', import.meta.url))],
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
              const source = sources[args.path]
              if (source) return { path: root + source }
              if (args.path.startsWith('/')) return undefined
              return { external: true }
            })
          },
        },
      ],
    })
    return outfile
  })()
  return bundled
}

/** What a server process printed. */
export type ChildEvent = { event: string; port?: number; message?: string; sessionId?: string }

/** One lightning server process (started by this test, stopped by its PID). */
export class ServerProcess {
  readonly events: ChildEvent[] = []
  stderr = ''
  port = 0
  readonly #child: ChildProcess

  constructor(script: string, config: ChildConfig) {
    this.#child = spawn(process.execPath, [script], {
      env: { ...process.env, MPPKIT_LN_CONFIG: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as ChildEvent)
      } catch {
        this.stderr += `${line}\n`
      }
    })
    this.#child.stderr!.on('data', (chunk) => {
      this.stderr += String(chunk)
    })
  }

  /** The process's URL for `path`. */
  url(path = '/generate'): string {
    return `http://127.0.0.1:${this.port}${path}`
  }

  async ready(timeoutMs = 60_000): Promise<this> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const listening = this.events.find((event) => event.event === 'listening')
      if (listening?.port) {
        this.port = listening.port
        return this
      }
      if (this.#child.exitCode !== null)
        throw new Error(`server process exited (${this.#child.exitCode}): ${this.stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`server process not listening after ${timeoutMs} ms: ${this.stderr}`)
  }

  /** Stops the process (SIGTERM to its own PID) and waits for its exit. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = once(this.#child, 'exit')
    this.#child.kill('SIGTERM')
    await exited
  }
}
