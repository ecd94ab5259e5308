import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createSolanaRpc } from '@solana/kit'
import { authenticatedLndGrpc, getWalletInfo } from 'lightning'
import { afterAll, describe, expect, it } from 'vitest'
import type { DevnetInfo } from '../src/index.js'

// The built CLI is what `npm run devnet` runs; `npm test` builds first, a bare vitest run may not.
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const reason = existsSync(cli)
  ? ''
  : 'packages/devnet/dist/cli.js is absent (run npm run build -w @mppkit/devnet)'
if (reason) console.warn(`[skip] ${reason}`)

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function rpc(url: string, method: string, params: unknown[] = []) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return ((await response.json()) as { result: unknown }).result
}

// Starts the CLI and resolves with its first stdout line (the JSON), the wall time to it, and stderr so far.
function startCli(args: string[] = []) {
  const begin = performance.now()
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const line = new Promise<{ line: string; ms: number }>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      const end = stdout.indexOf('\n')
      if (end !== -1) resolve({ line: stdout.slice(0, end), ms: performance.now() - begin })
    })
    void exited.then(({ code }) =>
      reject(new Error(`devnet CLI exited (${code}) before printing: ${stderr}`)),
    )
  })
  return { child, line, exited, stdout: () => stdout, stderr: () => stderr }
}

const children: ChildProcess[] = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL')
})

// anvil's PID is not in the JSON (it is for processes, not for this line); find the CLI's anvil child.
async function anvilPidOf(parent: number): Promise<number | undefined> {
  const { execFileSync } = await import('node:child_process')
  try {
    const pids = execFileSync('pgrep', ['-P', String(parent), 'anvil'], { encoding: 'utf8' })
      .trim()
      .split('\n')
    return pids[0] ? Number(pids[0]) : undefined
  } catch {
    return undefined
  }
}

describe('npm run devnet (dist/cli.js)', () => {
  it.skipIf(!!reason)(
    'prints one JSON line, serves every rail, and exits 0 on SIGINT leaving no anvil',
    async () => {
      const run = startCli()
      children.push(run.child)
      const { line, ms } = await run.line
      console.log(`[devnet-cli] process spawn to JSON line: ${ms.toFixed(0)} ms; ${run.stderr().trim()}`)
      // Start-up speed is reported (above) and measured by `npm run bench`, not asserted: a timed assertion
      // fails on a loaded machine without telling anything about the code.
      expect(ms).toBeGreaterThan(0)
      const info = JSON.parse(line) as DevnetInfo
      expect(Object.keys(info)).toEqual(['tempo', 'solana', 'lightning', 'stripe'])

      const stripe = info.stripe!
      const [chainId, health, wallet, intent] = await Promise.all([
        rpc(info.tempo!.rpcUrl, 'eth_chainId'),
        createSolanaRpc(info.solana!.rpcUrl).getHealth().send(),
        getWalletInfo({ lnd: authenticatedLndGrpc(info.lightning!.nodes.payee).lnd }),
        fetch(`${stripe.apiBase}/v1/payment_intents`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${stripe.secretKey}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: 'amount=250&currency=usd&payment_method_types[]=card',
        }).then((response) => response.json() as Promise<{ object: string; amount: number }>),
      ])
      expect(Number(chainId)).toBe(info.tempo!.chainId)
      expect(health).toBe('ok')
      expect(wallet.alias).toBe('payee')
      expect(intent).toMatchObject({ object: 'payment_intent', amount: 250 })

      const anvil = await anvilPidOf(run.child.pid!)
      expect(anvil).toBeDefined()
      expect(isRunning(anvil!)).toBe(true)
      // Nothing else on stdout: the JSON line is the whole output while the devnet runs.
      expect(run.stdout()).toBe(`${line}\n`)

      run.child.kill('SIGINT')
      expect(await run.exited).toEqual({ code: 0, signal: null })
      expect(isRunning(anvil!)).toBe(false)
      await expect(fetch(stripe.apiBase)).rejects.toThrow()
    },
  )

  it.skipIf(!!reason)('starts only the rails named by --rails and stops on SIGTERM', async () => {
    const run = startCli(['--rails', 'stripe,solana'])
    children.push(run.child)
    const info = JSON.parse((await run.line).line) as DevnetInfo
    expect(Object.keys(info)).toEqual(['solana', 'stripe'])
    expect(await anvilPidOf(run.child.pid!)).toBeUndefined()
    run.child.kill('SIGTERM')
    expect(await run.exited).toEqual({ code: 0, signal: null })
  })

  it.skipIf(!!reason)('exits 2 on an unknown rail', async () => {
    const run = startCli(['--rails', 'bitcoin'])
    children.push(run.child)
    run.line.catch(() => undefined)
    expect((await run.exited).code).toBe(2)
    expect(run.stderr()).toMatch(/unknown rail bitcoin/)
  })
})
