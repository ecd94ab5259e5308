// @ts-check
// Example servers print "listening on <url>" as their first line; clients exit with their status.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

/** Starts an example server and resolves with its URL once it listens. */
export async function startServer(file, env) {
  const child = spawn(process.execPath, [file], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const [line] = await Promise.race([
    once(createInterface({ input: child.stdout }), 'line'),
    once(child, 'exit').then(() => ['']),
  ])
  const url = /(http:\/\/\S+)/.exec(line)?.[1]
  if (!url) {
    child.kill()
    throw new Error(`${file} did not start`)
  }
  return { url, kill: () => child.kill() }
}

/** Runs an example client to completion with inherited output; resolves with its exit code. */
export async function runClient(file, args, env) {
  const child = spawn(process.execPath, [file, ...args], { env, stdio: 'inherit' })
  const [code] = await once(child, 'exit')
  return code ?? 1
}
