// The payer's forced close (draft-tempo-session-00: "1. Client calls requestClose() 2. Wait 15 min grace
// period 3. Client calls withdraw()"): a payer whose server went away takes its deposit back, on anvil,
// through the session client and `reclaimChannel`, with chain time advanced past the escrow's grace period.
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
import { reclaimChannel, sessionClient } from '../src/client/index.js'
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
    devnet = await startTempo({ accounts: 6 })
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

  /**
   * A session server on the devnet (payee: account 0) for `realm`, and a paying session client of account
   * `payer` reaching it in-process; the client's chain reads go to `rpcUrl` (default: the node).
   */
  const paying = (realm: string, payer: number, rpcUrl = devnet.info.rpcUrl) => {
    const { info } = devnet
    const method = sessionServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: privateKeyToAccount(info.accounts[0]!.privateKey),
      escrow: info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
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
    expect(missing.stderr).toMatch(/^mppkit reclaim: missing --channel\n/)
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
