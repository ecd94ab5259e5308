// The payer's forced close (draft-tempo-session-00: "1. Client calls requestClose() 2. Wait 15 min grace
// period 3. Client calls withdraw()"): a payer whose server went away takes its deposit back, on anvil,
// through the session client and `reclaimChannel`, with chain time advanced past the escrow's grace period.

import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConfigurationError, create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceTempoTime,
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { type Io, reclaim } from '../src/cli.js'
import { findOpenChannels, reclaimChannel, sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel, rpcProxy } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-reclaim-secret-0123456789ab'
const price = 1_000n
const deposit = 100n * price

describe.skipIf(!!reason)('tempo/session: the payer reclaims a deposit without the server', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 9 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const balance = (address: Hex) =>
    tempoClients(devnet.info).publicClient.readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [address],
    })
  const nonceOf = (address: Hex) =>
    tempoClients(devnet.info).publicClient.getTransactionCount({ address, blockTag: 'pending' })

  /** A session server on the devnet for `realm` (payee: devnet account `account`), and its handler. */
  const payee = (realm: string, account = 0) => {
    const { info } = devnet
    const method = sessionServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: privateKeyToAccount(info.accounts[account]!.privateKey),
      escrow: info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
    return { realm, method, server, handler }
  }

  /**
   * A session server for `realm` (see `payee`), and a paying session client of account `payer` reaching
   * it in-process; the client's chain reads go to `rpcUrl` (default: the node).
   */
  const paying = (realm: string, payer: number, rpcUrl = devnet.info.rpcUrl) => {
    const { info } = devnet
    const { method, server, handler } = payee(realm)
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(info.accounts[payer]!.privateKey),
      rpcUrl,
      chainId: info.chainId,
      deposit,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    return { method, server, sessions, client, url: `https://${realm}/resource` }
  }

  it('requests the forced close, sends nothing before the grace period ends, then withdraws the deposit less what the payee settled', async () => {
    const { info } = devnet
    const { method, server, sessions, client, url } = paying('reclaim.test', 1)
    const payer = privateKeyToAccount(info.accounts[1]!.privateKey)
    for (let i = 0; i < 3; i++) expect((await client.fetch(url)).status).toBe(200)
    const [opened] = [...sessions.channels.values()]
    const channelId = opened!.channelId
    const where = { rpcUrl: info.rpcUrl, escrow: info.escrow, channelId }

    // Another account's call touches nothing: refused before anything is signed.
    const stranger = privateKeyToAccount(info.accounts[2]!.privateKey)
    const strangerNonce = await nonceOf(stranger.address)
    const refused = await reclaimChannel({ ...where, account: stranger }).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(PaymentFailedError)
    expect((refused as Error).message).toMatch(/not by this account; nothing was signed/)
    expect(await nonceOf(stranger.address)).toBe(strangerNonce)
    expect((await readChannel(info, channelId)).closeRequestedAt).toBe(0n)

    // The first step: the close is requested on chain, and the client forgets the channel.
    const closing = await sessions.reclaim(url)
    expect(closing).toMatchObject({
      status: 'closing',
      channelId,
      escrow: info.escrow,
      chainId: info.chainId,
    })
    if (closing.status !== 'closing') throw new Error('unreachable')
    expect(closing.transactionHash).toMatch(/^0x[0-9a-f]{64}$/)
    const requested = await readChannel(info, channelId)
    expect(requested.closeRequestedAt).toBeGreaterThan(0n)
    expect(closing.withdrawableAt.getTime()).toBe(Number(requested.closeRequestedAt + 15n * 60n) * 1000)
    expect(sessions.channels.size).toBe(0)

    // Before the grace period ends: where it stands, and nothing sent.
    const payerNonce = await nonceOf(payer.address)
    const early = await reclaimChannel({ ...where, account: payer })
    expect(early).toMatchObject({ status: 'closing', withdrawableAt: closing.withdrawableAt })
    expect(early).not.toHaveProperty('transactionHash')
    expect(await nonceOf(payer.address)).toBe(payerNonce)

    // A later payment to that server opens a new channel beside the closing one.
    expect((await client.fetch(url)).status).toBe(200)
    const [next] = [...sessions.channels.values()]
    expect(next!.channelId).not.toBe(channelId)

    // The grace period is the payee's time to settle its latest voucher: the three requests served.
    await method.settleChannels()
    expect((await readChannel(info, channelId)).settled).toBe(3n * price)

    // After the grace period (chain time): the withdrawal returns the deposit less what the payee settled.
    await advanceTempoTime(info.rpcUrl, 15 * 60)
    const before = await balance(payer.address)
    const held = await balance(info.escrow)
    const withdrawn = await reclaimChannel({ ...where, account: payer, chainId: info.chainId })
    if (withdrawn.status !== 'withdrawn') throw new Error(`expected a withdrawal, got ${withdrawn.status}`)
    const after = await readChannel(info, channelId)
    expect(after.finalized).toBe(true)
    expect(withdrawn.settled).toBe(after.settled)
    expect(withdrawn.refunded + withdrawn.settled).toBe(deposit)
    expect(withdrawn.settled).toBe(3n * price)
    // The escrow paid out exactly the refund; the payer got it, less its fee for the withdraw (paid in the
    // same token on this node).
    expect(withdrawn.refunded).toBeGreaterThan(0n)
    expect(await balance(info.escrow)).toBe(held - withdrawn.refunded)
    const gained = (await balance(payer.address)) - before
    expect(gained).toBeGreaterThan(withdrawn.refunded - 10_000n)
    expect(gained).toBeLessThanOrEqual(withdrawn.refunded)

    // Once finalized, nothing more to do, and nothing sent.
    const done = await nonceOf(payer.address)
    expect(await reclaimChannel({ ...where, account: payer })).toMatchObject({
      status: 'finalized',
      settled: after.settled,
    })
    expect(await nonceOf(payer.address)).toBe(done)
    await server.close()
  })

  it('`mppkit reclaim` (the Tempo CLI) walks the same steps, says when to come back, and never prints the key', async () => {
    const { info } = devnet
    const key = info.accounts[4]!.privateKey
    const { method, server, sessions, client, url } = paying('reclaim-cli.test', 4)
    expect((await client.fetch(url)).status).toBe(200)
    const channelId = [...sessions.channels.values()][0]!.channelId
    await method.settleChannels()

    const cli = async (argv: string[]) => {
      let stdout = ''
      let stderr = ''
      const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }
      const code = await reclaim(argv, io)
      expect(stdout + stderr).not.toContain(key.slice(2))
      return { code, stdout, stderr }
    }
    const args = ['--channel', channelId, '--escrow', info.escrow, '--key', key, '--rpc', info.rpcUrl]

    const requested = await cli(args)
    expect(requested.code, requested.stderr).toBe(0)
    const when = new RegExp(
      `^requested the forced close of channel ${channelId} \\(transaction 0x[0-9a-f]{64}\\); withdrawable from (\\S+) \\(chain time\\): run this command again then\n$`,
    ).exec(requested.stdout)
    expect(when, requested.stdout).not.toBeNull()
    const onChain = await readChannel(info, channelId)
    expect(new Date(when![1]!).getTime()).toBe(Number(onChain.closeRequestedAt + 15n * 60n) * 1000)

    const waiting = await cli(args)
    expect(waiting.code).toBe(0)
    expect(waiting.stdout).toBe(
      `channel ${channelId} is closing; withdrawable from ${when![1]} (chain time): run this command again then\n`,
    )

    await advanceTempoTime(info.rpcUrl, 15 * 60)
    const withdrawn = await cli(args)
    expect(withdrawn.code, withdrawn.stderr).toBe(0)
    expect(withdrawn.stdout).toMatch(
      new RegExp(
        `^withdrew channel ${channelId}: 0\\.099 \\(99000 base units\\) back to the payer, 0\\.001 \\(1000 base units\\) settled to the payee \\(transaction 0x[0-9a-f]{64}\\)\n$`,
      ),
    )
    expect((await readChannel(info, channelId)).finalized).toBe(true)
    const finalized = await cli(args)
    expect(finalized.code).toBe(0)
    expect(finalized.stdout).toBe(
      `channel ${channelId} is already finalized: nothing to reclaim (0.001 (1000 base units) settled to the payee)\n`,
    )

    // Another account's key: refused, nothing signed. Usage errors: exit 2, values not echoed.
    const stranger = await cli([
      '--channel',
      channelId,
      '--escrow',
      info.escrow,
      '--key',
      info.accounts[1]!.privateKey,
      '--rpc',
      info.rpcUrl,
    ])
    expect(stranger.code).toBe(1)
    expect(stranger.stderr).toMatch(/^mppkit reclaim: .*not by this account; nothing was signed/)
    const missing = await cli(['--escrow', info.escrow, '--key', key, '--rpc', info.rpcUrl])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/^mppkit reclaim: missing --channel \(or --all, or --list\)\n/)
    const keyAsChannel = await cli([
      '--channel',
      key.slice(2),
      '--escrow',
      info.escrow,
      '--key',
      key,
      '--rpc',
      info.rpcUrl,
    ])
    expect(keyAsChannel.code).toBe(2)
    expect(keyAsChannel.stderr).toMatch(/^mppkit reclaim: --channel takes a channel id .*\(not shown\)/)
    const stray = await cli([key, ...args])
    expect(stray.code).toBe(2)
    const badKey = await cli([
      '--channel',
      channelId,
      '--escrow',
      info.escrow,
      '--key',
      '0x1234',
      '--rpc',
      info.rpcUrl,
    ])
    expect(badKey.code).toBe(2)
    await server.close()
  })

  it('a requested close whose answer was lost makes the next payment read the chain: the closing channel is left, a new one opened', async () => {
    const { info } = devnet
    const proxy = await rpcProxy(info.rpcUrl)
    const { server, sessions, client, url } = paying('reclaim-lost.test', 5, proxy.url)
    try {
      expect((await client.fetch(url)).status).toBe(200)
      const [first] = [...sessions.channels.values()]
      proxy.set('lose-send')
      const lost = await sessions.reclaim(url).catch((error: unknown) => error)
      proxy.set('up')
      expect(lost).toBeInstanceOf(PaymentFailedError)
      expect((lost as Error).message).toMatch(
        /requestClose transaction was sent, but the node did not confirm it/,
      )
      // The node took it: the close is requested on chain, and the client does not take that for granted.
      expect((await readChannel(info, first!.channelId)).closeRequestedAt).toBeGreaterThan(0n)
      expect(first!.unanswered).toBe(true)
      expect((await client.fetch(url)).status).toBe(200)
      const channels = [...sessions.channels.values()]
      expect(channels).toHaveLength(1)
      expect(channels[0]!.channelId).not.toBe(first!.channelId)
    } finally {
      await proxy.close()
      await server.close()
    }
  })

  it("finds the payer's channels that still hold a deposit from the escrow's events, and `mppkit reclaim --all` takes each back", async () => {
    const { info } = devnet
    const key = info.accounts[6]!.privateKey
    const payer = privateKeyToAccount(key).address
    // Two open channels of the payer (two servers), one it closed with its server, and another payer's.
    const a = paying('find-a.test', 6)
    const b = paying('find-b.test', 6)
    const closed = paying('find-closed.test', 6)
    const other = paying('find-other.test', 7)
    for (const side of [a, b, closed, other]) expect((await side.client.fetch(side.url)).status).toBe(200)
    const idOf = (side: typeof a) => [...side.sessions.channels.values()][0]!.channelId
    const [idA, idB, idClosed, idOther] = [idOf(a), idOf(b), idOf(closed), idOf(other)]
    expect((await closed.sessions.close(closed.url)).status).toBe(200)
    expect((await readChannel(info, idClosed)).finalized).toBe(true)

    // Small windows: the search spans many eth_getLogs requests and still finds each channel once.
    const found = await findOpenChannels({ payer, rpcUrl: info.rpcUrl, escrow: info.escrow, blockRange: 7 })
    expect(found.map((channel) => channel.channelId)).toEqual([idA, idB])
    for (const channel of found) {
      const onChain = await readChannel(info, channel.channelId)
      expect(channel).toMatchObject({
        escrow: info.escrow,
        chainId: info.chainId,
        payee: privateKeyToAccount(info.accounts[0]!.privateKey).address,
        deposit,
        settled: onChain.settled,
      })
      expect(channel.token.toLowerCase()).toBe(info.tokens.pathUsd.toLowerCase())
      expect(channel).not.toHaveProperty('withdrawableAt')
      expect(channel.openedInBlock).toBeGreaterThan(0n)
    }
    // The other payer's channel is its own.
    expect(
      (
        await findOpenChannels({
          payer: privateKeyToAccount(info.accounts[7]!.privateKey).address,
          rpcUrl: info.rpcUrl,
          escrow: info.escrow,
        })
      ).map((channel) => channel.channelId),
    ).toEqual([idOther])

    // A node that refuses wide log queries (as many public nodes do): the windows shrink until it answers.
    // Capped below the chain's length, so that the first window (the whole chain) is refused.
    // (20 empty blocks first: the windows must have a chain to split, whichever tests ran before.)
    await fetch(info.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'anvil_mine', params: ['0x14'] }),
    })
    const latest = await tempoClients(info).publicClient.getBlockNumber()
    expect(latest).toBeGreaterThan(20n)
    let refused = 0
    let cap = Number(latest)
    const capped = createHttpServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        id: number
        method: string
        params: { fromBlock: string; toBlock: string }[]
      }
      const range =
        body.method === 'eth_getLogs'
          ? Number(body.params[0]!.toBlock) - Number(body.params[0]!.fromBlock) + 1
          : 0
      res.setHeader('content-type', 'application/json')
      if (range > cap) {
        refused++
        res.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: body.id,
            error: { code: -32005, message: `query exceeds max block range ${cap}` },
          }),
        )
        return
      }
      const answer = await fetch(info.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      res.end(await answer.text())
    })
    await new Promise<void>((resolve) => capped.listen(0, '127.0.0.1', resolve))
    try {
      const cappedUrl = `http://127.0.0.1:${(capped.address() as AddressInfo).port}`
      const throughCap = await findOpenChannels({
        payer,
        rpcUrl: cappedUrl,
        escrow: info.escrow,
        blockRange: 1_000,
      })
      expect(throughCap.map((channel) => channel.channelId)).toEqual([idA, idB])
      expect(refused).toBeGreaterThan(0)
      // Windows shrink to 10 blocks at the least: a node that refuses even those is an error, naming the blocks.
      cap = 4
      const tooNarrow = await findOpenChannels({
        payer,
        rpcUrl: cappedUrl,
        escrow: info.escrow,
        blockRange: 1_000,
      }).catch((error: unknown) => error)
      expect(tooNarrow).toBeInstanceOf(PaymentFailedError)
      expect((tooNarrow as Error).message).toMatch(/could not read the escrow's logs \(blocks 0–9\)/)
    } finally {
      await new Promise((resolve) => capped.close(resolve))
    }

    const cli = async (argv: string[]) => {
      let stdout = ''
      let stderr = ''
      const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }
      const code = await reclaim(argv, io)
      expect(stdout + stderr).not.toContain(key.slice(2))
      return { code, stdout, stderr }
    }
    const node = ['--escrow', info.escrow, '--rpc', info.rpcUrl]
    // --list with --payer needs no key, and sends nothing.
    const nonce = await nonceOf(payer)
    const listed = await cli(['--list', '--payer', payer, ...node])
    expect(listed.code, listed.stderr).toBe(0)
    const lines = listed.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(2)
    for (const [i, id] of [idA, idB].entries())
      expect(lines[i]).toMatch(
        new RegExp(
          `^channel ${id} \\(escrow ${info.escrow}\\): open; deposit 0\\.1 \\(100000 base units\\), settled `,
        ),
      )

    // --all: the forced close requested on both open channels, nothing on the finalized or the other payer's.
    const requested = await cli(['--all', '--key', key, ...node])
    expect(requested.code, requested.stderr).toBe(0)
    for (const id of [idA, idB]) {
      expect(requested.stdout).toContain(`requested the forced close of channel ${id} (transaction 0x`)
      expect((await readChannel(info, id)).closeRequestedAt).toBeGreaterThan(0n)
    }
    expect(await nonceOf(payer)).toBe(nonce + 2)
    expect((await readChannel(info, idOther)).closeRequestedAt).toBe(0n)
    const closing = await cli(['--list', '--key', key, ...node])
    expect(closing.stdout.match(/: closing, withdrawable from \S+ \(chain time\); deposit/g)).toHaveLength(2)

    await advanceTempoTime(info.rpcUrl, 15 * 60)
    const escrowHeld = await balance(info.escrow)
    const withdrawn = await cli(['--all', '--from-block', '0', '--key', key, ...node])
    expect(withdrawn.code, withdrawn.stderr).toBe(0)
    const refunds = [
      ...withdrawn.stdout.matchAll(
        /^withdrew channel (0x[0-9a-f]{64}): \S+ \((\d+) base units\) back to the payer/gm,
      ),
    ]
    expect(refunds.map((match) => match[1])).toEqual([idA, idB])
    expect(await balance(info.escrow)).toBe(
      escrowHeld - refunds.reduce((sum, match) => sum + BigInt(match[2]!), 0n),
    )
    for (const id of [idA, idB]) expect((await readChannel(info, id)).finalized).toBe(true)
    const none = await cli(['--list', '--key', key, ...node])
    expect(none).toMatchObject({
      code: 0,
      stdout: `no channel of ${payer} holds a deposit on escrow ${info.escrow}\n`,
    })
    expect((await readChannel(info, idOther)).finalized).toBe(false)

    // Usage errors: one mode at a time, --payer only to list, and a chain without known escrows needs --escrow.
    for (const argv of [
      ['--all', '--list', '--key', key, ...node],
      ['--all', '--channel', idA, '--key', key, ...node],
      ['--all', '--payer', payer, '--key', key, ...node],
      ['--channel', idA, '--from-block', '0', '--key', key, ...node],
      ['--list', '--from-block', 'latest', '--key', key, ...node],
    ]) {
      const usage = await cli(argv)
      expect(usage.code, argv.join(' ')).toBe(2)
    }
    const unknownChain = await cli(['--list', '--payer', payer, '--rpc', info.rpcUrl])
    expect(unknownChain).toMatchObject({
      code: 2,
      stderr: `mppkit reclaim: chain ${info.chainId} has no known session escrow: name it with --escrow\n`,
    })
    for (const side of [a, b, closed, other]) await side.server.close()
  })

  it('closeAll() closes every channel the client holds, reports a server that cannot be reached and closes the rest', async () => {
    const { info } = devnet
    // One session client paying three servers (three channels); the third goes away before the close.
    // Each server its own payee: closeAll closes servers concurrently, and three server instances sharing
    // one payee key would race for its nonces (each sends its closes in turn on its own nonce lane only).
    const servers = (
      [
        ['close-x.test', 0],
        ['close-y.test', 5],
        ['close-z.test', 2],
      ] as const
    ).map(([realm, account]) => payee(realm, account))
    let down: string | undefined
    let refusing: string | undefined
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const host = new URL(request.url).hostname
      if (host === down) throw new TypeError('fetch failed')
      // Refuses the close itself (the credential), after its 402.
      if (host === refusing && request.headers.has('authorization'))
        return new Response('busy', { status: 503 })
      return servers.find((side) => side.realm === host)!.handler(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(info.accounts[8]!.privateKey),
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      deposit,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    for (const { realm } of servers)
      expect((await client.fetch(`https://${realm}/resource`)).status).toBe(200)
    const ids = [...sessions.channels.values()].map((channel) => channel.channelId)
    expect(ids).toHaveLength(3)

    // One server refuses the close (503), one cannot be reached.
    refusing = 'close-y.test'
    down = 'close-z.test'
    const first = await sessions.closeAll()
    expect(first.map(({ channelId, url, ok }) => ({ channelId, url, ok }))).toEqual([
      { channelId: ids[0], url: 'https://close-x.test/resource', ok: true },
      { channelId: ids[1], url: 'https://close-y.test/resource', ok: false },
      { channelId: ids[2], url: 'https://close-z.test/resource', ok: false },
    ])
    expect(first[0]!.response?.status).toBe(200)
    expect(first[1]!.response?.status).toBe(503)
    expect(first[2]!.error).toBeInstanceOf(Error)
    expect((await readChannel(info, ids[0]!)).finalized).toBe(true)
    for (const id of ids.slice(1)) expect((await readChannel(info, id)).finalized).toBe(false)
    // The channels whose close was refused or got no answer are still held, to be closed later (or reclaimed).
    expect([...sessions.channels.values()].map((channel) => channel.channelId)).toEqual(ids.slice(1))

    down = undefined
    refusing = undefined
    const second = await sessions.closeAll()
    expect(second.map(({ channelId, ok }) => ({ channelId, ok }))).toEqual([
      { channelId: ids[1], ok: true },
      { channelId: ids[2], ok: true },
    ])
    for (const id of ids.slice(1)) expect((await readChannel(info, id)).finalized).toBe(true)
    expect(sessions.channels.size).toBe(0)
    expect(await sessions.closeAll()).toEqual([])
    for (const { server } of servers) await server.close()
  })

  it('refuses malformed options and a channel that does not exist, naming what is wrong and no secret', async () => {
    const { info } = devnet
    const account = privateKeyToAccount(info.accounts[3]!.privateKey)
    const base = {
      account,
      rpcUrl: info.rpcUrl,
      escrow: info.escrow,
      channelId: `0x${'11'.repeat(32)}` as Hex,
    }
    for (const bad of [
      { ...base, channelId: '0x1234' as Hex },
      { ...base, channelId: undefined as unknown as Hex },
      { ...base, escrow: 'escrow' as Hex },
      { ...base, rpcUrl: 'ftp://node' },
      { ...base, account: undefined as never },
      { ...base, chainId: Number.NaN },
    ])
      await expect(reclaimChannel(bad)).rejects.toBeInstanceOf(ConfigurationError)
    const secretUrl = new URL(info.rpcUrl)
    secretUrl.username = 'user'
    secretUrl.password = 'hunter2'
    const missing = await reclaimChannel({ ...base, rpcUrl: secretUrl.href }).catch((error: unknown) => error)
    expect(missing).toBeInstanceOf(PaymentFailedError)
    expect((missing as Error).message).toMatch(/holds no channel/)
    expect(JSON.stringify(missing)).not.toContain('hunter2')
    expect(String((missing as Error).message)).not.toContain('hunter2')
  })
})
