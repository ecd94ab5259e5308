// A session client that restarts pays on the channel it left open (`channelStore`): on anvil, through the
// core's paying client and a real session server, with the channel file written by `fileChannelStore`.
// "Channel reuse is OPTIONAL" (draft-tempo-session-00 §Method Details); what makes it safe is that the
// restarted client never signs below a voucher it sent, nor signs a second top-up beside one that may be
// mined: each is saved before it leaves, which the tests check at the moment of sending.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Challenge, Credential } from '@mppkit/core'
import { ConfigurationError, create as createClient, Receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { fileChannelStore, type SavedChannel } from '../src/client/node.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-resume-secret-0123456789abcd'
const price = 1_000n

type Saved = { cumulative: string; channelId: Hex; topUpPending?: { transaction: Hex } }
const readFile = (path: string): Record<string, Saved> => {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { channels: Record<string, Saved> }).channels
  } catch {
    return {}
  }
}

describe.skipIf(!!reason)('tempo/session: a restarted client resumes its channel (channelStore)', () => {
  let devnet: TempoDevnet
  let dir: string
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 9 })
    dir = mkdtempSync(join(tmpdir(), 'mppkit-resume-'))
  })
  afterAll(async () => {
    await devnet?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
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

  /** A session server on the devnet (payee: account 0), as a fresh process would start it (memory store). */
  const payee = () => {
    const { info } = devnet
    const method = sessionServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: privateKeyToAccount(info.accounts[0]!.privateKey),
      escrow: info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm: 'resume.test', secrets: [secret], methods: [method] })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
    return { method, handler }
  }

  /**
   * A paying client of account `payer` whose channels live in `path`, reaching `handler` in-process.
   * Every credential it sends is checked against the file at that moment: a voucher's amount must not
   * exceed the cumulative saved, a top-up's transaction must be the one saved as pending.
   */
  const payer = (
    index: number,
    path: string,
    handler: (request: Request) => Promise<Response>,
    extra: {
      deposit?: bigint
      voucherAhead?: number
      intercept?: (payload: Record<string, unknown>) => Response | undefined
    } = {},
  ) => {
    const { info } = devnet
    const store = fileChannelStore(path)
    const sent: Record<string, unknown>[] = []
    const violations: string[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const authorization = request.headers.get('authorization')
      if (authorization?.startsWith('Payment ')) {
        const { payload } = Credential.parse(authorization) as { payload: Record<string, unknown> }
        sent.push(payload)
        const saved = Object.values(readFile(path)).find((entry) => entry.channelId === payload.channelId)
        if (typeof payload.cumulativeAmount === 'string' && payload.action !== 'close') {
          if (!saved || BigInt(saved.cumulative) < BigInt(payload.cumulativeAmount))
            violations.push(
              `${payload.action} for ${payload.cumulativeAmount} sent, saved ${saved?.cumulative}`,
            )
        }
        if (payload.action === 'topUp' && saved?.topUpPending?.transaction !== payload.transaction)
          violations.push('topUp sent before it was saved as pending')
        const intercepted = extra.intercept?.(payload)
        if (intercepted) return intercepted
      }
      return handler(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(info.accounts[index]!.privateKey),
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      deposit: extra.deposit ?? 100n * price,
      ...(extra.voucherAhead ? { voucherAhead: extra.voucherAhead } : {}),
      fetch: fetcher,
      channelStore: store,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    const pay = async () => {
      const response = await client.fetch('https://resume.test/r')
      const header = response.headers.get('payment-receipt')
      return { status: response.status, receipt: header ? Receipt.parse(header) : undefined }
    }
    return {
      sessions,
      client,
      store,
      sent,
      violations,
      pay,
      address: privateKeyToAccount(info.accounts[index]!.privateKey).address,
    }
  }

  it('pays on the same channel after a restart, with vouchers above what it signed, and one deposit in all', async () => {
    const path = join(dir, 'same.json')
    const server = payee()
    const first = payer(1, path, server.handler)
    const nonce = await nonceOf(first.address)
    for (let i = 0; i < 3; i++) expect((await first.pay()).status).toBe(200)
    const [opened] = [...first.sessions.channels.values()]
    const channelId = opened!.channelId
    const saved = Object.values(readFile(path))
    expect(saved).toHaveLength(1)
    expect(saved[0]).toMatchObject({ channelId, cumulative: String(3n * price) })
    first.store.close()

    // The same server, a new client process: restored, checked on chain, paid on.
    const second = payer(1, path, server.handler)
    const restored = await second.sessions.restore()
    expect(restored.map((state) => state.channelId)).toEqual([channelId])
    for (let i = 0; i < 2; i++) {
      const { status, receipt } = await second.pay()
      expect(status).toBe(200)
      expect(String(receipt?.reference ?? receipt?.channelId).toLowerCase()).toBe(channelId.toLowerCase())
    }
    // The first voucher after the restart presents the channel again with its own open (nothing new on chain).
    expect(second.sent.map((payload) => payload.action)).toEqual(['open', 'voucher'])
    expect(second.sent[0]!.cumulativeAmount).toBe(String(4n * price))
    first.store.close()
    second.store.close()

    // The server settles what it served (five requests) and stops; a new server process (memory store)
    // knows the channel only from the chain: the restarted client pays it on the same channel.
    await server.method.settleChannels()
    expect((await readChannel(devnet.info, channelId)).settled).toBe(5n * price)
    const restarted = payee()
    const third = payer(1, path, restarted.handler)
    expect((await third.pay()).status).toBe(200)
    expect([...third.sessions.channels.values()].map((state) => state.channelId)).toEqual([channelId])
    // One channel opened for the three clients: one transaction of the payer's in all.
    expect(await nonceOf(first.address)).toBe(nonce + 1)

    const closed = await third.sessions.close('https://resume.test/r')
    expect(closed.status).toBe(200)
    expect(readFile(path)).toEqual({})
    const onChain = await readChannel(devnet.info, channelId)
    expect(onChain.finalized).toBe(true)
    // Six requests served in all, across two server processes and three client processes.
    expect(onChain.settled).toBe(6n * price)
    for (const client of [first, second, third]) expect(client.violations).toEqual([])
    third.store.close()
  })

  it('with voucherAhead, a restart signs above what was authorized ahead; the close captures only what was served', async () => {
    const path = join(dir, 'ahead.json')
    const server = payee()
    const first = payer(2, path, server.handler, { voucherAhead: 10 })
    for (let i = 0; i < 3; i++) expect((await first.pay()).status).toBe(200)
    const [opened] = [...first.sessions.channels.values()]
    // Authorized ahead of what was served (3 prices), and saved before it was sent.
    const signed = opened!.cumulative
    expect(signed).toBeGreaterThan(3n * price)
    expect(Object.values(readFile(path))[0]!.cumulative).toBe(String(signed))
    first.store.close()

    const second = payer(2, path, server.handler, { voucherAhead: 10 })
    for (let i = 0; i < 2; i++) expect((await second.pay()).status).toBe(200)
    // Above the ten prices authorized before the restart: the server's spent is unknown to the new client.
    expect(BigInt(second.sent[0]!.cumulativeAmount as string)).toBeGreaterThan(signed)
    const before = await balance(second.address)
    expect((await second.sessions.close('https://resume.test/r')).status).toBe(200)
    const onChain = await readChannel(devnet.info, opened!.channelId)
    expect(onChain.settled).toBe(5n * price)
    expect((await balance(second.address)) - before).toBe(100n * price - 5n * price)
    expect([...first.violations, ...second.violations]).toEqual([])
    second.store.close()
  })

  it('a top-up left unanswered is sent again as signed after the restart, never a second one', async () => {
    const path = join(dir, 'topup.json')
    const server = payee()
    let topUps = 0
    // The server's answer to the first top-up is lost (503 without acting on it).
    const first = payer(3, path, server.handler, {
      deposit: 2n * price,
      intercept: (payload) =>
        payload.action === 'topUp' && topUps++ === 0
          ? new Response('unavailable', { status: 503 })
          : undefined,
    })
    for (let i = 0; i < 2; i++) expect((await first.pay()).status).toBe(200)
    await expect(first.pay()).rejects.toThrow(/top-up refused \(503\)/)
    const pending = Object.values(readFile(path))[0]!.topUpPending
    expect(pending?.transaction).toMatch(/^0x/)
    first.store.close()

    const nonce = await nonceOf(first.address)
    const second = payer(3, path, server.handler)
    expect((await second.pay()).status).toBe(200)
    const sentTopUps = second.sent.filter((payload) => payload.action === 'topUp')
    expect(sentTopUps.map((payload) => payload.transaction)).toEqual([pending!.transaction])
    // One transaction mined for it (the open and the first top-up's nonce were used before).
    expect(await nonceOf(first.address)).toBe(nonce + 1)
    const [state] = [...second.sessions.channels.values()]
    expect((await readChannel(devnet.info, state!.channelId)).deposit).toBe(4n * price)
    expect(Object.values(readFile(path))[0]!.topUpPending).toBeUndefined()
    expect([...first.violations, ...second.violations]).toEqual([])
    second.store.close()
  })

  it('a saved channel closed since is dropped on restore and a new one opened', async () => {
    const path = join(dir, 'closed.json')
    const server = payee()
    const first = payer(4, path, server.handler)
    expect((await first.pay()).status).toBe(200)
    const left = readFileSync(path, 'utf8')
    const [opened] = [...first.sessions.channels.values()]
    expect((await first.sessions.close('https://resume.test/r')).status).toBe(200)
    expect(readFile(path)).toEqual({})
    first.store.close()
    // As if the delete had been lost: the record of the closed channel is back.
    writeFileSync(path, left)

    const second = payer(4, path, server.handler)
    // Read on chain when restored: finalized, so dropped from the store and not paid on.
    expect(await second.sessions.restore()).toEqual([])
    expect(readFile(path)).toEqual({})
    expect((await second.pay()).status).toBe(200)
    const [now] = [...second.sessions.channels.values()]
    expect(now!.channelId).not.toBe(opened!.channelId)
    expect(Object.values(readFile(path)).map((entry) => entry.channelId)).toEqual([now!.channelId])
    second.store.close()
  })

  it('a record copied under a second key is restored once, from the highest cumulative amount; the copy is named and kept', async () => {
    const path = join(dir, 'copied.json')
    const server = payee()
    const first = payer(8, path, server.handler)
    for (let i = 0; i < 3; i++) expect((await first.pay()).status).toBe(200)
    first.store.close()
    const file = JSON.parse(readFileSync(path, 'utf8')) as { channels: Record<string, Saved> }
    const [[stored, latest]] = Object.entries(file.channels) as [[string, Saved]]
    // The same channel, as saved one payment earlier, under the key of another origin.
    const copy = stored.replace('|resume.test|', '|copy.test|')
    expect(copy).not.toBe(stored)
    file.channels[copy] = { ...latest, cumulative: String(2n * price) }
    writeFileSync(path, JSON.stringify(file))

    const second = payer(8, path, server.handler)
    const restored = await second.sessions.restore()
    // One state for one channel: two would sign vouchers from two cumulative amounts.
    expect(restored.map((state) => [state.channelId, state.cumulative])).toEqual([
      [latest.channelId, 3n * price],
    ])
    expect(second.sessions.skipped()).toEqual([
      expect.objectContaining({ key: copy, reason: 'duplicate', channelId: latest.channelId }),
    ])
    expect(second.sessions.skipped()[0]!.problem).toContain(JSON.stringify(stored))
    expect((await second.pay()).status).toBe(200)
    expect(second.sent.at(-1)!.cumulativeAmount).toBe(String(4n * price))
    // The copy is left in the file as it was, for its owner to remove.
    expect(readFile(path)[copy]).toMatchObject({ cumulative: String(2n * price) })
    expect(second.violations).toEqual([])
    second.store.close()
  })

  it('refuses to pay from a record naming a channel its fields do not make, and leaves other payers alone', async () => {
    const path = join(dir, 'tampered.json')
    const server = payee()
    const first = payer(5, path, server.handler)
    expect((await first.pay()).status).toBe(200)
    first.store.close()
    const contents = JSON.parse(readFileSync(path, 'utf8')) as { channels: Record<string, Saved> }
    const [key] = Object.keys(contents.channels)
    // Another payer's record is kept as it is; this payer's record edited to name another channel.
    const other = `0x${'ab'.repeat(20)}|elsewhere`
    contents.channels[other] = { ...contents.channels[key!]!, channelId: `0x${'cd'.repeat(32)}` }
    contents.channels[key!]!.channelId = `0x${'ef'.repeat(32)}`
    writeFileSync(path, JSON.stringify(contents))

    const second = payer(5, path, server.handler)
    const nonce = await nonceOf(second.address)
    // Skipped and named (never paid on, never deleted): one bad record does not stop the others.
    expect(await second.sessions.restore()).toEqual([])
    expect(second.sessions.skipped()).toMatchObject([{ key, reason: 'invalid' }])
    expect(second.sessions.skipped()[0]!.problem).toMatch(/^names channel 0xefef/)
    // A payment to its server refuses, before anything is signed or sent: its new channel would be
    // saved over the record.
    const refused = await second.client.fetch('https://resume.test/r').catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(ConfigurationError)
    expect((refused as Error).message).toMatch(/names channel 0xefef.*saved over it; nothing was signed/)
    expect(second.sent).toEqual([])
    expect(await nonceOf(second.address)).toBe(nonce)
    second.store.close()

    // The record fixed (removed), the client pays again; the other payer's record is untouched.
    const fixed = JSON.parse(readFileSync(path, 'utf8')) as { channels: Record<string, Saved> }
    delete fixed.channels[key!]
    writeFileSync(path, JSON.stringify(fixed))
    const third = payer(5, path, server.handler)
    expect((await third.pay()).status).toBe(200)
    expect(readFile(path)[other]!.channelId).toBe(`0x${'cd'.repeat(32)}`)
    expect(Object.keys(readFile(path))).toHaveLength(2)
    third.store.close()
  })

  it('quotes a deposit unless it holds the channel this payment uses: a restored channel of another payee leaves it in', async () => {
    const path = join(dir, 'quote.json')
    const server = payee()
    const first = payer(6, path, server.handler)
    expect((await first.pay()).status).toBe(200)
    first.store.close()
    const second = payer(6, path, server.handler)
    await second.sessions.restore()
    const challenge = Challenge.parseAll(
      (await server.handler(new Request('https://resume.test/r'))).headers.get('www-authenticate')!,
    )[0]!
    const request = challenge.request as Parameters<NonNullable<typeof second.sessions.quote>>[0]
    // Its own server: the restored channel pays, no deposit quoted.
    expect(second.sessions.quote!(request, challenge)).not.toHaveProperty('deposit')
    // Another payee on the same escrow and token: a new channel, so its deposit is quoted (and checked
    // against the policy and the CLI's cap and confirmation) even though a channel exists on that escrow.
    const other = { ...request, recipient: devnet.info.accounts[5]!.address }
    expect(second.sessions.quote!(other, { ...challenge, request: other })).toMatchObject({
      deposit: 100n * price,
    })
    expect(second.sessions.quote!(other)).toMatchObject({ deposit: 100n * price })
    expect(second.sessions.quote!(request)).not.toHaveProperty('deposit')
    // Another realm of the same payee: a channel of its own too.
    expect(second.sessions.quote!(request, { ...challenge, realm: 'other.test' })).toMatchObject({
      deposit: 100n * price,
    })
    second.store.close()
  })

  it('a save that fails sends nothing: no open, no voucher, no top-up leaves the client', async () => {
    const server = payee()
    const { info } = devnet
    const sent: string[] = []
    let failing = false
    const records: Record<string, SavedChannel> = {}
    const store = {
      load: async () => ({ ...records }),
      save: async (key: string, channel: SavedChannel) => {
        if (failing) throw new Error('disk full')
        records[key] = channel
      },
      delete: async (key: string) => {
        delete records[key]
      },
    }
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const authorization = request.headers.get('authorization')
      if (authorization)
        sent.push(String((Credential.parse(authorization).payload as { action: string }).action))
      return server.handler(request)
    }) as typeof fetch
    const account = privateKeyToAccount(info.accounts[7]!.privateKey)
    const sessions = sessionClient({
      account,
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      deposit: 2n * price,
      fetch: fetcher,
      channelStore: store,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    const nonce = await nonceOf(account.address)
    failing = true
    await expect(client.fetch('https://resume.test/r')).rejects.toThrow(/could not save the channel/)
    expect(sent).toEqual([])
    expect(sessions.channels.size).toBe(0)
    failing = false
    expect((await client.fetch('https://resume.test/r')).status).toBe(200)
    expect((await client.fetch('https://resume.test/r')).status).toBe(200)
    expect(sent).toEqual(['open', 'voucher'])
    failing = true
    // The next voucher, and the top-up the one after needs: neither leaves without its save.
    await expect(client.fetch('https://resume.test/r')).rejects.toThrow(/could not save the channel/)
    expect(sent).toEqual(['open', 'voucher'])
    expect(await nonceOf(account.address)).toBe(nonce + 1)
    failing = false
    expect((await client.fetch('https://resume.test/r')).status).toBe(200)
    expect(sent).toEqual(['open', 'voucher', 'topUp', 'voucher'])
  })

  it('an open that fails after its save (a voucher signer that throws) leaves no record behind', async () => {
    const server = payee()
    const { info } = devnet
    const records: Record<string, SavedChannel> = {}
    const saves: string[] = []
    const store = {
      load: async () => ({ ...records }),
      save: async (key: string, channel: SavedChannel) => {
        saves.push(key)
        records[key] = channel
      },
      delete: async (key: string) => {
        delete records[key]
      },
    }
    const account = privateKeyToAccount(info.accounts[7]!.privateKey)
    const delegate = privateKeyToAccount(`0x${'77'.repeat(32)}`)
    const signer = {
      ...delegate,
      signTypedData: async () => Promise.reject(new Error('the signer is locked')),
    }
    const sessions = sessionClient({
      account,
      signer: signer as never,
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      fetch: ((input: RequestInfo, init?: RequestInit) =>
        server.handler(new Request(input, init))) as typeof fetch,
      channelStore: store,
    })
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      server.handler(new Request(input, init))) as typeof fetch
    const client = createClient({ methods: [sessions], fetch: fetcher })
    await expect(client.fetch('https://resume.test/r')).rejects.toThrow(/the signer is locked/)
    expect(saves).toHaveLength(1)
    expect(records).toEqual({})
    expect(sessions.channels.size).toBe(0)
  })
})
