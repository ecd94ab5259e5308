import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { bundleChild } from '../../../../scripts/bundle-child.js'
import type { ChildConfig } from './child.js'

let bundled: Promise<string> | undefined

/** Bundles `child.ts` (core, the stores and this method from their sources) into one ESM file, once. */
export function bundle(): Promise<string> {
  bundled ??= bundleChild(fileURLToPath(new URL('./child.ts', import.meta.url)))
  return bundled
}

/** What a server process printed (`server`: the index of the server it is about in the config). */
export type ChildEvent = {
  event: string
  server?: number
  port?: number
  message?: string
  sessionId?: string
}

/** One lightning server process (started by this test, stopped by its PID), running `config.servers`. */
export class ServerProcess {
  readonly events: ChildEvent[] = []
  stderr = ''
  /** Each server's port, by its index in the config. */
  readonly ports: number[] = []
  readonly #child: ChildProcess
  readonly #servers: number

  constructor(script: string, config: ChildConfig) {
    this.#servers = config.servers.length
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

  /** The URL of `path` on server `server` of the process. */
  url(path = '/generate', server = 0): string {
    return `http://127.0.0.1:${this.ports[server]}${path}`
  }

  /** Waits until every server of the process listens. */
  async ready(timeoutMs = 60_000): Promise<this> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      for (const { event, server, port } of this.events)
        if (event === 'listening' && server !== undefined && port) this.ports[server] = port
      if (Array.from({ length: this.#servers }, (_, i) => this.ports[i]).every((port) => port !== undefined))
        return this
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
