import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { DevnetError } from '../errors.js'

/**
 * Finds the anvil binary shipped by `@foundry-rs/anvil` (its platform package, e.g.
 * `@foundry-rs/anvil-linux-amd64/bin/anvil`), or the path in `MPPKIT_ANVIL_BINARY` when set.
 *
 * @example
 * ```ts
 * const anvil = resolveAnvilBinary() // '/…/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil'
 * ```
 */
export function resolveAnvilBinary(): string {
  const override = process.env.MPPKIT_ANVIL_BINARY
  if (override) {
    if (!existsSync(override)) {
      throw new DevnetError('MPPKIT_ANVIL_BINARY points to a missing file', { code: 'devnet_anvil_missing' })
    }
    return override
  }
  const arch = process.arch === 'x64' ? 'amd64' : process.arch
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${arch}`
  const binaryName = process.platform === 'win32' ? 'anvil.exe' : 'anvil'
  const require = createRequire(import.meta.url)
  // The platform package is an optional dependency of `@foundry-rs/anvil`; resolve it from there so a
  // non-hoisted install still works, then from here as a fallback.
  const bases: string[] = []
  try {
    bases.push(require.resolve('@foundry-rs/anvil/package.json'))
  } catch {}
  bases.push(import.meta.url)
  for (const base of bases) {
    try {
      const manifest = createRequire(base).resolve(`${platformPackage}/package.json`)
      const binary = join(dirname(manifest), 'bin', binaryName)
      if (existsSync(binary)) return binary
    } catch {}
  }
  throw new DevnetError(
    `anvil binary not found: install @foundry-rs/anvil (needs ${platformPackage}) or set MPPKIT_ANVIL_BINARY`,
    { code: 'devnet_anvil_missing' },
  )
}

/**
 * Why a Tempo node cannot be started here (printed as a test's skip reason), or `undefined` when the
 * anvil binary is available.
 *
 * @example
 * ```ts
 * const reason = tempoUnavailableReason()
 * if (reason) console.warn(`[skip] ${reason}`)
 * ```
 */
export function tempoUnavailableReason(): string | undefined {
  try {
    resolveAnvilBinary()
    return undefined
  } catch {
    return 'anvil binary (@foundry-rs/anvil) is not installed'
  }
}

/**
 * A dev account anvil printed at start.
 *
 * @example
 * ```ts
 * const [first]: AnvilAccount[] = parseAccounts(banner)
 * ```
 */
export type AnvilAccount = { address: `0x${string}`; privateKey: `0x${string}` }

/**
 * A running anvil child process.
 *
 * @example
 * ```ts
 * const anvil: AnvilProcess = await spawnAnvil({ binary, args: ['--network', 'tempo'], host: '127.0.0.1', timeoutMs: 10_000 })
 * ```
 */
export type AnvilProcess = {
  child: ChildProcess
  pid: number
  rpcUrl: string
  accounts: AnvilAccount[]
  /** Resolves once the process has exited. */
  exited: Promise<void>
}

/**
 * Spawns anvil with the given arguments plus `--port 0`, waits for its "Listening on" line and returns
 * the URL and the dev accounts it printed. On POSIX, anvil runs under a small `sh` watchdog (`exec`
 * keeps the PID) that kills it if this Node process dies without running its exit handlers (SIGKILL).
 *
 * @example
 * ```ts
 * const anvil = await spawnAnvil({ binary: resolveAnvilBinary(), args: ['--network', 'tempo'], host: '127.0.0.1', timeoutMs: 10_000 })
 * killProcess(anvil.child)
 * ```
 */
export async function spawnAnvil(parameters: {
  binary: string
  args: string[]
  host: string
  timeoutMs: number
}): Promise<AnvilProcess> {
  const { binary, args, host, timeoutMs } = parameters
  const fullArgs = [...args, '--host', host, '--port', '0']
  const child =
    process.platform === 'win32'
      ? spawn(binary, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true })
      : spawn(
          '/bin/sh',
          [
            '-c',
            // $$ is this shell's PID, which `exec` hands to anvil. The watcher polls the Node parent and
            // anvil: when anvil is gone it just exits; when the parent is gone it kills anvil.
            'parent=$PPID; ( while kill -0 "$parent" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 0.5; done; ' +
              'kill -0 "$parent" 2>/dev/null || kill -9 $$ 2>/dev/null ) </dev/null >/dev/null 2>&1 & ' +
              'exec "$0" "$@"',
            binary,
            ...fullArgs,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        )
  const pid = child.pid
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  if (pid === undefined) {
    throw new DevnetError('could not spawn anvil', { code: 'devnet_start_failed' })
  }
  let stdout = ''
  let stderr = ''
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new DevnetError(`anvil did not listen within ${timeoutMs} ms`, { code: 'devnet_start_timeout' }),
          ),
        timeoutMs,
      )
      child.stdout?.setEncoding('utf8')
      child.stderr?.setEncoding('utf8')
      child.stdout?.on('data', (chunk: string) => {
        if (stdout.length < 64_000) stdout += chunk
        const match = /Listening on [^\s]*:(\d+)/.exec(stdout)
        if (match) {
          clearTimeout(timer)
          resolve(Number(match[1]))
        }
      })
      child.stderr?.on('data', (chunk: string) => {
        if (stderr.length < 8_000) stderr += chunk
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(new DevnetError('could not spawn anvil', { code: 'devnet_start_failed', cause: error }))
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        // stderr only: stdout lists the dev private keys, which never go into an error message.
        reject(
          new DevnetError(
            `anvil exited before listening (code ${code}, signal ${signal}): ${stderr.trim()}`,
            {
              code: 'devnet_start_failed',
            },
          ),
        )
      })
    })
    // Later output is not needed; keep draining the pipes so anvil never blocks on a full buffer.
    child.stdout?.removeAllListeners('data')
    child.stderr?.removeAllListeners('data')
    child.stdout?.resume()
    child.stderr?.resume()
    return { child, pid, rpcUrl: `http://${host}:${port}`, accounts: parseAccounts(stdout), exited }
  } catch (error) {
    killProcess(child)
    throw error
  }
}

/**
 * Parses anvil's "Available Accounts" and "Private Keys" banner into accounts.
 *
 * @example
 * ```ts
 * parseAccounts(stdout)[0]?.address // '0xf39F…2266'
 * ```
 */
export function parseAccounts(banner: string): AnvilAccount[] {
  const section = (title: string) => {
    const start = banner.indexOf(title)
    if (start === -1) return ''
    const rest = banner.slice(start + title.length)
    const end = rest.search(/\n[A-Z][A-Za-z ]+\n=+/)
    return end === -1 ? rest : rest.slice(0, end)
  }
  const addresses = [...section('Available Accounts').matchAll(/\((\d+)\)\s+(0x[0-9a-fA-F]{40})/g)]
  const keys = [...section('Private Keys').matchAll(/\((\d+)\)\s+(0x[0-9a-fA-F]{64})/g)]
  const accounts: AnvilAccount[] = []
  for (const [index, match] of addresses.entries()) {
    const key = keys[index]
    if (!key || key[1] !== match[1]) break
    accounts.push({ address: match[2] as `0x${string}`, privateKey: key[2] as `0x${string}` })
  }
  return accounts
}

/**
 * Sends SIGKILL to the child by its PID if it is still running.
 *
 * @example
 * ```ts
 * killProcess(anvil.child)
 * ```
 */
export function killProcess(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  try {
    process.kill(child.pid, 'SIGKILL')
  } catch {
    // Already gone.
  }
}
