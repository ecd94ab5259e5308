// `mppkit close --channel-file` with a file holding one valid open channel beside records that cannot be
// read: the valid channel is closed on chain, each bad record is named by its key (never its contents,
// which hold a signed transaction) and left in the file, and the exit code is 1. On the anvil devnet,
// through the rail CLI's `close` and through the built `mppkit` bin (rebuild dist first:
// `npm run build -w packages/method-tempo`).

import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { close, type Io, pay } from '../src/cli.js'
import type { SavedChannel } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const root = fileURLToPath(new URL('../../../', import.meta.url))
const bin = join(root, 'packages/core/bin/mppkit.js')
const built =
  existsSync(join(root, 'packages/core/dist/bin/mppkit.js')) &&
  existsSync(join(root, 'packages/method-tempo/dist/cli.js'))
if (!built) console.warn('[skip] mppkit close through the bin: run `npm run build` first')

type ChannelFile = { v: 1; channels: Record<string, unknown> }

describe.skipIf(!!reason)('mppkit close (tempo): records it cannot read', () => {
  let devnet: TempoDevnet
  let http: HttpServer
  let base: string
  let dir: string
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
    const { info } = devnet
    const server = createServer({
      realm: 'cli-close.test',
      secrets: ['tempo-cli-close-test-secret-0123456789abcdef'],
      methods: [
        sessionServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          account: privateKeyToAccount(info.accounts[0]!.privateKey),
          escrow: info.escrow,
          timeout: 5_000,
        }),
      ],
      logger: false,
    })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: '100' } }] },
      () => new Response('session body'),
    )
    http = createHttpServer(toNodeListener(handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
    dir = mkdtempSync(join(tmpdir(), 'mppkit-cli-close-'))
  })
  afterAll(async () => {
    http?.closeAllConnections()
    await new Promise((resolve) => http?.close(resolve))
    await devnet?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** Runs a rail command with `env` set (a developer's own MPPKIT_CHANNEL_FILE left out). */
  const run = async (command: typeof pay, args: string[], env: Record<string, string>) => {
    let stdout = ''
    let stderr = ''
    const saved = { ...process.env }
    Object.assign(process.env, { MPPKIT_CHANNEL_FILE: '' }, env)
    const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }
    try {
      return { code: await command(args, io), stdout, stderr }
    } finally {
      process.env = saved
    }
  }
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as ChannelFile

  it('closes the valid channel on chain, names each bad record (exit 1) and leaves it in the file', async () => {
    const { info } = devnet
    const key = info.accounts[1]!.privateKey
    const payer = privateKeyToAccount(key).address.toLowerCase()
    const env = { MPPKIT_PRIVATE_KEY: key, MPPKIT_RPC_URL: info.rpcUrl }
    const file = join(dir, 'channels.json')
    const kept = await run(
      pay,
      [`${base}/r`, '--deposit', '5000', '--keep-open', '--channel-file', file],
      env,
    )
    expect(kept.code, kept.stderr).toBe(0)
    const [valid] = Object.values(read(file).channels) as SavedChannel[]
    expect(valid).toBeDefined()

    // Beside it, as a crash, an old version or a hand edit could leave them: a record whose value is
    // broken JSON text, and one of the wrong shape that still carries the channel's signed open.
    const prefix = `${payer}|${payer}|${info.chainId}|`
    const bad = {
      [`${prefix}half-written`]: '{"v":1,"channelId":"0x',
      [`${prefix}hand-edited`]: { ...valid!, deposit: -5, spent: 'none' },
    }
    const contents = read(file)
    Object.assign(contents.channels, bad)
    writeFileSync(file, JSON.stringify(contents))

    const closed = await run(close, ['--channel-file', file], env)
    expect(closed.code).toBe(1)
    expect(closed.stdout).toMatch(
      new RegExp(`^closed channel ${valid!.channelId} \\(${base}\\): \\{.*\\}\\n$`),
    )
    expect(closed.stderr).toBe(
      `mppkit close: saved channel "${prefix}half-written" in ${file} is not a valid record (record): skipped, left in the file as it is (fix or remove it)\n` +
        `mppkit close: saved channel "${prefix}hand-edited" in ${file} is not a valid record (deposit, spent): skipped, left in the file as it is (fix or remove it)\n`,
    )
    // No key, no signed transaction, no salt printed.
    for (const secret of [key.slice(2), valid!.open.transaction.slice(2, 66), valid!.salt.slice(2)])
      expect(closed.stdout + closed.stderr).not.toContain(secret)
    // Closed on chain: the server settled the one request, the escrow refunded the rest.
    expect(await readChannel(info, valid!.channelId)).toMatchObject({ finalized: true, settled: 100n })
    // The closed channel left the file; the bad records are still there, as they were.
    expect(read(file).channels).toEqual(bad)
    expect(existsSync(`${file}.lock`)).toBe(false)

    // Another run names them again (exit 1) and closes nothing; `mppkit pay` on the file names them and
    // still pays (its channel is saved under a key of its own).
    const again = await run(close, ['--channel-file', file], env)
    expect(again).toMatchObject({ code: 1, stdout: '' })
    expect(again.stderr.split('\n').filter(Boolean)).toHaveLength(2)
    const paid = await run(
      pay,
      [`${base}/r`, '--deposit', '5000', '--keep-open', '--channel-file', file],
      env,
    )
    expect(paid.code, paid.stderr).toBe(0)
    expect(paid.stderr).toContain(
      `mppkit pay: saved channel "${prefix}hand-edited" in ${file} is not a valid record (deposit, spent): skipped, left in the file as it is (fix or remove it)\n`,
    )
    const reopened = Object.entries(read(file).channels).find(([name]) => !(name in bad))
    expect(reopened).toBeDefined()
    expect(await readChannel(info, (reopened![1] as SavedChannel).channelId as Hex)).toMatchObject({
      finalized: false,
    })

    // With <url> of another server: the records of this one are not this run's; one whose server
    // cannot be read is named either way.
    const elsewhere = await run(close, ['--channel-file', file, 'http://localhost:1/x'], env)
    expect(elsewhere).toMatchObject({ code: 1, stdout: '' })
    expect(elsewhere.stderr).toBe(
      `mppkit close: saved channel "${prefix}half-written" in ${file} is not a valid record (record): skipped, left in the file as it is (fix or remove it)\n`,
    )
  })

  it.skipIf(!built)(
    'through the built mppkit bin: the valid channel closed, the bad record named, exit 1',
    async () => {
      const { info } = devnet
      const key = info.accounts[2]!.privateKey
      const payer = privateKeyToAccount(key).address.toLowerCase()
      const env = { MPPKIT_PRIVATE_KEY: key, MPPKIT_RPC_URL: info.rpcUrl }
      const file = join(dir, 'bin-channels.json')
      const kept = await run(
        pay,
        [`${base}/r`, '--deposit', '5000', '--keep-open', '--channel-file', file],
        env,
      )
      expect(kept.code, kept.stderr).toBe(0)
      const [valid] = Object.values(read(file).channels) as SavedChannel[]
      const contents = read(file)
      const badKey = `${payer}|${payer}|${info.chainId}|future`
      contents.channels[badKey] = { ...valid!, v: 2 }
      writeFileSync(file, JSON.stringify(contents))

      const result = await promisify(execFile)('node', [bin, 'close', '--channel-file', file], {
        env: { ...process.env, ...env, MPPKIT_CHANNEL_FILE: '' },
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      )
      expect(result.code).toBe(1)
      expect(result.stdout).toContain(`closed channel ${valid!.channelId} (${base})`)
      expect(result.stderr).toBe(
        `mppkit close: saved channel "${badKey}" in ${file} is a record of version 2, which this client does not read (it reads version 1): skipped, left in the file as it is (fix or remove it)\n`,
      )
      expect(result.stdout + result.stderr).not.toContain(valid!.open.transaction.slice(2, 66))
      expect(await readChannel(info, valid!.channelId)).toMatchObject({ finalized: true, settled: 100n })
      expect(Object.keys(read(file).channels)).toEqual([badKey])
    },
  )
})
