// `npm start` (the README's second command) as a person runs it: it builds what it needs, starts the
// devnet, the playground and its paid demo API, prints the URL, serves the page within 10 s of the build
// finishing, and Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends it) stops
// every process it started. A wall-clock bound: vitest.config.ts runs this file alone, after the rest of
// the suite, so other test files do not share the two cores while it is timed.
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../../../', import.meta.url))

/** The PIDs of every live descendant of `pid` (from /proc: Linux only). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // Field 4 of /proc/<pid>/stat is the parent PID (after the parenthesised command name).
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)])
    } catch {}
  }
  const out: number[] = []
  const visit = (p: number) => {
    for (const child of children.get(p) ?? []) {
      out.push(child)
      visit(child)
    }
  }
  visit(pid)
  return out
}

const alive = (pid: number) => {
  try {
    // A zombie (exited, not yet reaped) is not running.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

const linux = existsSync('/proc/self/stat')
if (!linux) console.warn('[skip] npm start process tree: reads /proc (Linux only)')

describe.skipIf(!linux)('npm start', () => {
  let child: ChildProcess | undefined
  afterAll(() => {
    if (child?.pid && child.exitCode === null) process.kill(-child.pid, 'SIGKILL')
  })

  it('builds, prints the URL, serves the page within 10 s of the build finishing, and Ctrl-C leaves no process behind', async () => {
    // Its own process group, so that SIGINT reaches npm, the shell and node together, as Ctrl-C does.
    child = spawn('npm', ['start'], {
      cwd: root,
      detached: true,
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout! })
    let builtAt: number | undefined
    let printed = ''
    const url = await new Promise<string>((resolve, reject) => {
      lines.on('line', (line) => {
        printed += `${line}\n`
        // build.mjs --quiet ends with "built in …": the build is done.
        if (/^\[playground\] built in /.test(line)) builtAt = performance.now()
        const match = /^playground: (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)
        if (match) resolve(match[1]!)
      })
      child!.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${printed}`)))
    })
    expect(builtAt, printed).toBeDefined()
    const page = await fetch(url)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<script type="module" src="/page.js">')
    await (await fetch(new URL('/page.js', url))).arrayBuffer()
    const seconds = (performance.now() - builtAt!) / 1000
    console.log(`[start] page served ${seconds.toFixed(1)} s after the build finished`)
    expect(seconds).toBeLessThan(10)
    // Every rail the playground has views for is up: Tempo, Stripe and Lightning answer from the nodes.
    const balances = (await (await fetch(new URL('/api/balances', url))).json()) as Record<string, unknown>
    expect(Object.keys(balances)).toEqual(expect.arrayContaining(['tempo', 'stripe', 'lightning']))
    const { tempo } = (await (await fetch(new URL('/api/config', url))).json()) as {
      tempo: { rpcUrl: string }
    }

    // Only this server's own Host and origin are served: not a forged Host (DNS rebinding would read the
    // devnet keys in /api/config), not a cross-site POST (a form would make the agents pay).
    const status = (path: string, headers: Record<string, string>, method = 'GET', body = '{}') =>
      new Promise<number>((resolve, reject) => {
        const request = http.request(new URL(path, url), { method, headers }, (response) => {
          response.resume()
          resolve(response.statusCode!)
        })
        request.once('error', reject)
        request.end(method === 'POST' ? body : undefined)
      })
    const port = new URL(url).port
    expect(await status('/api/config', {})).toBe(200)
    expect(await status('/api/config', { host: `localhost:${port}` })).toBe(200)
    expect(await status('/api/config', { host: 'attacker.example' })).toBe(403)
    expect(await status('/api/config', { host: `127.0.0.1:${Number(port) + 1}` })).toBe(403)
    expect(
      await status(
        '/api/lightning/charge',
        { origin: 'https://evil.example', 'content-type': 'text/plain' },
        'POST',
      ),
    ).toBe(403)

    // The page's own API answers bad input with a 400, not the devnet's error as a 502.
    for (const body of ['null', '{', '{"paymentMethod":"pm_card_visa"}'])
      expect(await status('/api/stripe/token', { 'content-type': 'application/json' }, 'POST', body)).toBe(
        400,
      )

    const tree = descendants(child.pid!)
    // npm, its shell, the playground's node, and the devnet's anvil at least.
    expect(tree.length, `processes under npm start: ${tree}`).toBeGreaterThanOrEqual(2)
    const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve))
    process.kill(-child.pid!, 'SIGINT')
    await exited
    // Give the last children a moment to be reaped, then none may be left.
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline && [child.pid!, ...tree].some(alive))
      await new Promise((resolve) => setTimeout(resolve, 100))
    expect([child.pid!, ...tree].filter(alive)).toEqual([])
    await expect(
      fetch(tempo.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
      }),
    ).rejects.toThrow()
  }, 240_000)

  it('SIGTERM to npm alone (a process manager, an IDE stop button) leaves no process behind', async () => {
    child = spawn('npm', ['start'], {
      cwd: root,
      detached: true,
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout! })
    let printed = ''
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => {
        printed += `${line}\n`
        if (/^playground: http:\/\/127\.0\.0\.1:\d+\/$/.test(line)) resolve()
      })
      child!.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${printed}`)))
    })
    const tree = descendants(child.pid!)
    expect(tree.length, `processes under npm start: ${tree}`).toBeGreaterThanOrEqual(2)
    const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve))
    // Only npm gets the signal: the script's last step must be the server itself (exec), or the shell
    // between them exits and leaves the server and its nodes running.
    process.kill(child.pid!, 'SIGTERM')
    await exited
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline && tree.some(alive)) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(tree.filter(alive)).toEqual([])
  }, 240_000)
})
