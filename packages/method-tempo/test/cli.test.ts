import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Credential, type Receipt } from '@mppkit/core'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { type Address, createPublicClient, erc20Abi, type Hex, http as viemHttp } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { commonOptions } from '../../core/src/cli/rail.js'
import { railOptions } from '../../core/src/internal/railCli.js'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoRpc,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { close, type Io, options, pay, reclaim } from '../src/cli.js'
import { describeIntent } from '../src/internal/spendGuard.js'
import { chargeServer, sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

async function closedPort(): Promise<number> {
  const probe = createHttpServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

describe.skipIf(!!reason)('mppkit pay (tempo)', () => {
  let devnet: TempoDevnet
  let http: HttpServer
  let base: string
  let payee: Address
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 11 })
    const { info } = devnet
    const payeeAccount = privateKeyToAccount(info.accounts[0]!.privateKey)
    payee = payeeAccount.address
    const charge = chargeServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      recipient: payee,
    })
    const sessionOptions = {
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: payeeAccount,
      escrow: info.escrow,
      voucherTimeout: 20_000,
    }
    const secrets = ['tempo-cli-test-secret-0123456789abcdefghij']
    const server = createServer({
      realm: 'cli.test',
      secrets,
      methods: [charge, sessionServer(sessionOptions)],
    })
    const streamServer = createServer({
      realm: 'cli.test',
      secrets,
      methods: [sessionServer({ ...sessionOptions, unitsPerRequest: 0 })],
    })
    const noClose = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: '100' } }] },
      () => new Response('session body'),
    )
    const routes: Record<string, (request: Request) => Promise<Response>> = {
      '/charge': server.protect(
        { offers: [{ method: 'tempo', request: { amount: '1234' } }] },
        () => new Response('charged body'),
      ),
      '/pricey': server.protect(
        { offers: [{ method: 'tempo', request: { amount: '5000000000' } }] },
        () => new Response('pricey body'),
      ),
      '/medium': server.protect(
        { offers: [{ method: 'tempo', request: { amount: '500000' } }] },
        () => new Response('medium body'),
      ),
      '/session-pricey': server.protect(
        { offers: [{ method: 'tempo', intent: 'session', request: { amount: '40000' } }] },
        () => new Response('pricey session body'),
      ),
      '/session': server.protect(
        { offers: [{ method: 'tempo', intent: 'session', request: { amount: '100' } }] },
        () => new Response('session body'),
      ),
      // A server that serves but never closes: every close credential is answered 503.
      '/session-noclose': async (request) => {
        const [token] = Credential.extract(request.headers.get('authorization'))
        const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
        if (action === 'close') return new Response('closing is down', { status: 503 })
        return noClose(request)
      },
      '/stream': streamServer.protect(
        { offers: [{ method: 'tempo', intent: 'session', request: { amount: '100' } }] },
        (_request, payment) =>
          (payment.context as { sse(chunks: string[]): Response }).sse([
            'one',
            'two',
            'three',
            'four',
            'five',
          ]),
      ),
      // 0.05 a chunk on a 0.10 deposit: the third chunk needs a top-up to 0.20, the fifth one to 0.40.
      '/metered': streamServer.protect(
        {
          offers: [
            { method: 'tempo', intent: 'session', request: { amount: '50000', suggestedDeposit: '100000' } },
          ],
        },
        (_request, payment) =>
          (payment.context as { sse(chunks: string[]): Response }).sse(['c1', 'c2', 'c3', 'c4', 'c5', 'c6']),
      ),
    }
    http = createHttpServer(
      toNodeListener((request: Request) => routes[new URL(request.url).pathname]!(request)),
    )
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    http?.closeAllConnections()
    await new Promise((resolve) => http?.close(resolve))
    await devnet?.stop()
  })

  const run = async (
    args: string[],
    env: Record<string, string> = {},
    confirm?: (question: string) => Promise<boolean>,
    command: typeof pay = pay,
  ) => {
    let stdout = ''
    let stderr = ''
    const saved = { ...process.env }
    Object.assign(process.env, env)
    const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), confirm }
    try {
      const code = await command(args, io)
      return { code, stdout, stderr }
    } finally {
      process.env = saved
    }
  }
  const key = (i: number) => devnet.info.accounts[i]!.privateKey
  const rpc = () => ['--rpc', devnet.info.rpcUrl]
  const balance = (i: number) =>
    createPublicClient({ transport: viemHttp(devnet.info.rpcUrl) }).readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [devnet.info.accounts[i]!.address],
    })

  it('pays a charge with flags: says what it pays, body on stdout, decoded receipt on stderr', async () => {
    const { code, stdout, stderr } = await run([`${base}/charge`, '--key', key(1), ...rpc()])
    expect(code, stderr).toBe(0)
    expect(stdout).toBe('charged body')
    expect(stderr).toContain(
      `mppkit pay: pay 0.001234 PathUSD (1234 base units) to ${payee} (realm cli.test; currency ${devnet.info.tokens.pathUsd})`,
    )
    const receipt = JSON.parse(stderr.slice(stderr.indexOf('{'))) as Receipt.Receipt
    expect(receipt).toMatchObject({ method: 'tempo', status: 'success' })
    expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
  })

  it('refuses a misspelt option with exit 2 before paying anything (--maxamount once paid 5,000)', async () => {
    const before = await balance(2)
    const { code, stderr } = await run([`${base}/pricey`, '--maxamount', '100', '--key', key(2), ...rpc()])
    expect(code).toBe(2)
    expect(stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: unknown option --maxamount (did you mean --max-amount?)"`,
    )
    expect(await balance(2)).toBe(before)
  })

  it('refuses a payment above the default cap, and pays it when the cap is raised explicitly', async () => {
    const before = await balance(2)
    const refused = await run([`${base}/pricey`, '--key', key(2), ...rpc()])
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toContain(
      'refusing to pay 5,000 of 0x20c0000000000000000000000000000000000000 (5000000000 base units): above the cap of 1 (1000000 base units); raise it with --max-amount <base units>',
    )
    expect(await balance(2)).toBe(before)
    const paid = await run([
      `${base}/pricey`,
      '--max-amount',
      '5000000000',
      '--yes',
      '--key',
      key(2),
      ...rpc(),
    ])
    expect(paid.code, paid.stderr).toBe(0)
    expect(paid.stdout).toBe('pricey body')
    // The payer also paid the gas fee in PathUSD (a few hundred base units).
    const spent = before - (await balance(2))
    expect(spent >= 5_000_000_000n && spent < 5_000_010_000n, String(spent)).toBe(true)
  })

  it('asks at a terminal before paying above 0.10, pays nothing when declined, and --yes skips the question', async () => {
    const before = await balance(3)
    const questions: string[] = []
    const declined = await run([`${base}/medium`, '--key', key(3), ...rpc()], {}, async (question) => {
      questions.push(question)
      return false
    })
    expect(declined.code).toBe(1)
    expect(questions).toEqual([
      `mppkit pay: pay 0.5 PathUSD (500000 base units) to ${payee} (realm cli.test; currency ${devnet.info.tokens.pathUsd})`,
    ])
    expect(declined.stderr).toContain('payment declined')
    expect(await balance(3)).toBe(before)
    // Below the threshold nothing is asked.
    const small = await run([`${base}/charge`, '--key', key(3), ...rpc()], {}, async () => {
      throw new Error('asked below the threshold')
    })
    expect(small.code, small.stderr).toBe(0)
    const yes = await run([`${base}/medium`, '--yes', '--key', key(3), ...rpc()], {}, async () => {
      throw new Error('asked despite --yes')
    })
    expect(yes.code, yes.stderr).toBe(0)
    expect(yes.stdout).toBe('medium body')
  })

  it('pays a session from env, then closes the channel', async () => {
    const { code, stdout, stderr } = await run([`${base}/session`, '--deposit', '5000'], {
      MPPKIT_PRIVATE_KEY: key(4),
      MPPKIT_RPC_URL: devnet.info.rpcUrl,
    })
    expect(code, stderr).toBe(0)
    expect(stdout).toBe('session body')
    expect(stderr).toContain(
      'open a tempo session: deposit 0.005 PathUSD into escrow, 0.0001 PathUSD per request',
    )
    expect(stderr).toContain('"intent": "session"')
    expect(stderr).toContain('close receipt')
    expect(stderr).toMatch(/"txHash": "0x[0-9a-f]{64}"/)
  })

  it('names a channel it could not close (or kept open) and how to take its deposit back', async () => {
    const env = { MPPKIT_PRIVATE_KEY: key(4), MPPKIT_RPC_URL: devnet.info.rpcUrl }
    const left = await run([`${base}/session-noclose`, '--deposit', '5000'], env)
    expect(left.code, left.stderr).toBe(0)
    expect(left.stdout).toBe('session body')
    expect(left.stderr).toContain('mppkit pay: closing the session failed: HTTP 503')
    const named =
      /session channel (0x[0-9a-f]{64}) stays open in escrow (0x[0-9a-fA-F]{40}) on chain (\d+) \(deposit 0\.005\)/.exec(
        left.stderr,
      )
    expect(named, left.stderr).not.toBeNull()
    expect(named![2]!.toLowerCase()).toBe(devnet.info.escrow.toLowerCase())
    expect(Number(named![3])).toBe(devnet.info.chainId)
    expect(left.stderr).toContain(
      `\`mppkit reclaim --channel ${named![1]} --escrow ${named![2]}\` (or reclaimChannel() of @mppkit/method-tempo/client) takes it back`,
    )
    // That channel is the payer's, open on chain with its deposit.
    const channel = await readChannel(devnet.info, named![1] as Hex)
    expect(channel.deposit).toBe(5000n)
    expect(channel.finalized).toBe(false)
    // Closed as usual: nothing is left to name.
    const closed = await run([`${base}/session`, '--deposit', '5000'], env)
    expect(closed.code, closed.stderr).toBe(0)
    expect(closed.stderr).not.toContain('stays open')
    // Kept open on purpose: named too.
    const kept = await run([`${base}/session`, '--deposit', '5000', '--keep-open'], env)
    expect(kept.code, kept.stderr).toBe(0)
    expect(kept.stderr).toMatch(/session channel 0x[0-9a-f]{64} stays open in escrow/)
  })

  // A server giving the node 1 s: an open the node keeps unmined (automine off) is answered 503, and the
  // final close 410 (no such channel on chain yet). The run once said the channel "stays open in escrow"
  // with a `mppkit reclaim --channel` command that fails ("escrow holds no channel"), while the open
  // could still be mined and lock the deposit.
  it('names a channel whose open is not mined yet: it may still be, locks its deposit once mined, found later with reclaim --list', async () => {
    const { info } = devnet
    const server = createServer({
      realm: 'cli-slow.test',
      secrets: ['tempo-cli-slow-secret-0123456789abcdefghij'],
      methods: [
        sessionServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          account: privateKeyToAccount(info.accounts[0]!.privateKey),
          escrow: info.escrow,
          timeout: 1_000,
        }),
      ],
      logger: false,
    })
    const statuses: string[] = []
    const protect = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: '100' } }] },
      () => new Response('slow body'),
    )
    const slow = createHttpServer(
      toNodeListener(async (request: Request) => {
        const [token] = Credential.extract(request.headers.get('authorization'))
        const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
        const response = await protect(request)
        if (action) statuses.push(`${action} ${response.status}`)
        return response
      }),
    )
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/r`
    const payer = info.accounts[10]!.address
    const automine = (on: boolean) => tempoRpc(info.rpcUrl, 'evm_setAutomine', [on])
    const nonceOf = (blockTag: 'latest' | 'pending') =>
      tempoClients(info).publicClient.getTransactionCount({ address: payer, blockTag })
    try {
      await automine(false)
      const nonce = await nonceOf('latest')
      const left = await run([url, '--deposit', '5000', '--key', key(10), ...rpc()])
      expect(left.code).toBe(1)
      // The open answered 503 (the node did not mine it within the server's second), the close 410.
      expect(statuses[0]).toBe('open 503')
      expect(statuses.at(-1)).toBe('close 410')
      // The open waits in the node's pool.
      expect(await nonceOf('pending')).toBe(nonce + 1)
      expect(await nonceOf('latest')).toBe(nonce)
      const named =
        /session channel (0x[0-9a-f]{64}) \(escrow (0x[0-9a-fA-F]{40}), chain (\d+)\): its open is not mined yet, and may still be: once mined, it locks its deposit of 0\.005 in the escrow/.exec(
          left.stderr,
        )
      expect(named, left.stderr).not.toBeNull()
      const [, channelId, escrow] = named!
      expect(escrow!.toLowerCase()).toBe(info.escrow.toLowerCase())
      // Nothing to reclaim now (\`mppkit reclaim --channel\` answers that the escrow holds no channel): said so.
      expect(left.stderr).toContain(
        `Nothing can be taken back before then: later, \`mppkit reclaim --list --escrow ${escrow}\` finds it once mined, ` +
          `and \`mppkit reclaim --channel ${channelId} --escrow ${escrow}\` then takes it back; ` +
          'pass `--channel-file <path>` next time to keep such a channel and close it later with `mppkit close`\n',
      )
      expect(left.stderr).not.toContain('stays open in escrow')
      const none = await run(
        ['--list', '--escrow', escrow!, '--key', key(10), ...rpc()],
        {},
        undefined,
        reclaim,
      )
      expect(none.stdout).not.toContain(channelId)

      // Mined after all: it holds the deposit, and reclaim --list finds it.
      await automine(true)
      await tempoRpc(info.rpcUrl, 'evm_mine', [])
      expect((await readChannel(info, channelId as Hex)).deposit).toBe(5000n)
      const listed = await run(
        ['--list', '--escrow', escrow!, '--key', key(10), ...rpc()],
        {},
        undefined,
        reclaim,
      )
      expect(listed.code, listed.stderr).toBe(0)
      expect(listed.stdout).toContain(`channel ${channelId} (escrow ${escrow}): open; deposit 0.005`)

      // With --channel-file the channel is saved: \`mppkit close\` closes it once it is mined.
      const dir = mkdtempSync(join(tmpdir(), 'mppkit-cli-unmined-'))
      const file = join(dir, 'channels.json')
      try {
        await automine(false)
        const kept = await run([url, '--deposit', '5000', '--channel-file', file, '--key', key(10), ...rpc()])
        expect(kept.code).toBe(1)
        const [saved] = Object.values(
          (JSON.parse(readFileSync(file, 'utf8')) as { channels: Record<string, { channelId: string }> })
            .channels,
        )
        expect(kept.stderr).toContain(
          `session channel ${saved!.channelId} (escrow ${escrow}, chain ${info.chainId}): its open is not mined yet, and may still be`,
        )
        expect(kept.stderr).toContain(
          `; saved in ${file}: \`mppkit close --channel-file ${file}\` closes it once mined\n`,
        )
        await automine(true)
        await tempoRpc(info.rpcUrl, 'evm_mine', [])
        const closed = await run(['--channel-file', file, '--key', key(10), ...rpc()], {}, undefined, close)
        expect(closed.code, closed.stderr).toBe(0)
        expect(closed.stdout).toContain(`closed channel ${saved!.channelId}`)
        expect((await readChannel(info, saved!.channelId as Hex)).finalized).toBe(true)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    } finally {
      await automine(true)
      slow.closeAllConnections()
      await new Promise((resolve) => slow.close(resolve))
    }
  })

  it('--channel-file: a channel kept open is paid on by the next run (no new deposit), and closed by a run without --keep-open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mppkit-cli-channels-'))
    const file = join(dir, 'channels.json')
    const env = { MPPKIT_PRIVATE_KEY: key(7), MPPKIT_RPC_URL: devnet.info.rpcUrl }
    const client = createPublicClient({ transport: viemHttp(devnet.info.rpcUrl) })
    const nonceOf = () =>
      client.getTransactionCount({ address: devnet.info.accounts[7]!.address, blockTag: 'pending' })
    const saved = () =>
      Object.values((JSON.parse(readFileSync(file, 'utf8')) as { channels: object }).channels)
    try {
      const nonce = await nonceOf()
      const first = await run(
        [`${base}/session`, '--deposit', '5000', '--keep-open', '--channel-file', file],
        env,
      )
      expect(first.code, first.stderr).toBe(0)
      expect(first.stderr).toContain('open a tempo session: deposit 0.005')
      const named = /session channel (0x[0-9a-f]{64}) stays open/.exec(first.stderr)
      expect(named, first.stderr).not.toBeNull()
      expect(first.stderr).toContain(`saved in ${file}: \`--channel-file\` pays on it again`)
      expect(saved()).toMatchObject([{ channelId: named![1], cumulative: '100' }])
      expect(existsSync(`${file}.lock`)).toBe(false)
      expect(await nonceOf()).toBe(nonce + 1)

      // The next run pays on the saved channel: no deposit announced, no transaction of the payer's.
      const second = await run([`${base}/session`, '--keep-open', '--channel-file', file], env)
      expect(second.code, second.stderr).toBe(0)
      expect(second.stdout).toBe('session body')
      expect(second.stderr).toContain(`saved session channel ${named![1]}`)
      expect(second.stderr).not.toContain('deposit 0.005 PathUSD into escrow')
      expect(await nonceOf()).toBe(nonce + 1)
      expect(saved()).toMatchObject([{ channelId: named![1], cumulative: '200' }])

      // Without --keep-open the run pays, closes the channel and forgets it.
      const third = await run([`${base}/session`, '--channel-file', file], env)
      expect(third.code, third.stderr).toBe(0)
      expect(third.stderr).toContain('close receipt')
      expect(third.stderr).not.toContain('stays open')
      expect(saved()).toEqual([])
      const channel = await readChannel(devnet.info, named![1] as Hex)
      expect(channel.finalized).toBe(true)
      expect(channel.settled).toBe(300n)
      expect(await nonceOf()).toBe(nonce + 1)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('--channel-file: a saved channel that runs out is topped up only after asking, above 0.10', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mppkit-cli-topup-'))
    const file = join(dir, 'channels.json')
    const env = { MPPKIT_PRIVATE_KEY: key(7), MPPKIT_RPC_URL: devnet.info.rpcUrl }
    const client = createPublicClient({ transport: viemHttp(devnet.info.rpcUrl) })
    const nonceOf = () =>
      client.getTransactionCount({ address: devnet.info.accounts[7]!.address, blockTag: 'pending' })
    const args = [`${base}/session-pricey`, '--deposit', '80000', '--keep-open', '--channel-file', file]
    try {
      // 0.04 a request on a deposit of 0.08 (below 0.10: not asked).
      const asked: string[] = []
      const ask = (answer: boolean) => async (question: string) => {
        asked.push(question)
        return answer
      }
      expect((await run(args, env, ask(true))).code).toBe(0)
      expect((await run(args, env, ask(true))).code).toBe(0)
      expect(asked).toEqual([])
      const nonce = await nonceOf()
      // The third request needs a top-up to 0.16: asked first; declined, nothing is signed.
      const declined = await run(args, env, ask(false))
      expect(declined.code).toBe(1)
      expect(asked).toHaveLength(1)
      expect(asked[0]).toMatch(
        /top up tempo session channel 0x[0-9a-f]{64}: deposit 0\.08 \S+ → 0\.16 \S+ \(to 0x/,
      )
      expect(declined.stderr).toMatch(/declined/)
      // Nothing signed or saved as pending; the channel named as kept open.
      expect(await nonceOf()).toBe(nonce)
      const saved = Object.values(
        (JSON.parse(readFileSync(file, 'utf8')) as { channels: Record<string, Record<string, unknown>> })
          .channels,
      )
      expect(saved).toHaveLength(1)
      expect(saved[0]).toMatchObject({ deposit: '80000', cumulative: '80000' })
      expect(saved[0]).not.toHaveProperty('topUpPending')
      expect(declined.stderr).toMatch(/session channel 0x[0-9a-f]{64} stays open/)
      // Said yes: topped up, shown, and paid.
      const topped = await run(args, env, ask(true))
      expect(topped.code, topped.stderr).toBe(0)
      expect(topped.stdout).toBe('pricey session body')
      expect(asked).toHaveLength(2)
      expect(topped.stderr).toMatch(/mppkit pay: top up tempo session channel 0x[0-9a-f]{64}: deposit 0\.08/)
      expect(await nonceOf()).toBe(nonce + 1)
      // Closed by a run without --keep-open, after its own request (the fourth: the whole 0.16).
      const closed = await run([`${base}/session-pricey`, '--channel-file', file, '--yes'], env)
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stderr).toContain('close receipt')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('mppkit close: closes the channels --channel-file kept open without paying again; a refused close stays saved', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mppkit-cli-close-'))
    const file = join(dir, 'channels.json')
    const env = { MPPKIT_PRIVATE_KEY: key(9), MPPKIT_RPC_URL: devnet.info.rpcUrl }
    const saved = () =>
      Object.values(
        (JSON.parse(readFileSync(file, 'utf8')) as { channels: Record<string, { channelId: string }> })
          .channels,
      )
    // A developer's own MPPKIT_CHANNEL_FILE left out.
    const closing = (args: string[]) => run(args, { ...env, MPPKIT_CHANNEL_FILE: '' }, undefined, close)
    try {
      const kept = await run(
        [`${base}/session`, '--deposit', '5000', '--keep-open', '--channel-file', file],
        env,
      )
      expect(kept.code, kept.stderr).toBe(0)
      const [channel] = saved()
      // Another server's URL: nothing of it is saved, nothing closed.
      const other = await closing(['--channel-file', file, 'http://localhost:1/x'])
      expect(other).toMatchObject({ code: 0 })
      expect(other.stdout).toMatch(
        /^no session channel of 0x[0-9a-fA-F]{40} is saved in .* for http:\/\/localhost:1\n$/,
      )
      expect(saved()).toHaveLength(1)
      // All of them: closed at the URL it was paid on, one request settled, the file emptied.
      const closed = await closing(['--channel-file', file])
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stdout).toContain(`closed channel ${channel!.channelId} (${base}): {`)
      expect(saved()).toEqual([])
      const onChain = await readChannel(devnet.info, channel!.channelId as Hex)
      expect(onChain.finalized).toBe(true)
      expect(onChain.settled).toBe(100n)
      expect((await closing(['--channel-file', file])).stdout).toMatch(/^no session channel/)

      // A server that refuses to close: the channel stays saved, named with its reclaim command.
      const stuck = await run(
        [`${base}/session-noclose`, '--deposit', '5000', '--keep-open', '--channel-file', file],
        env,
      )
      expect(stuck.code, stuck.stderr).toBe(0)
      const [left] = saved()
      const refused = await closing(['--channel-file', file, `${base}/session-noclose`])
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(
        `mppkit close: closing channel ${left!.channelId} (${base}) failed: HTTP 503; it stays saved (deposit 0.005); ` +
          `without the server, \`mppkit reclaim --channel ${left!.channelId} --escrow`,
      )
      expect(saved().map((entry) => entry.channelId)).toEqual([left!.channelId])
      // Usage errors: exit 2, nothing echoed.
      const none = await closing([])
      expect(none.code).toBe(2)
      expect(none.stderr).toMatch(/^mppkit close: missing --channel-file or MPPKIT_CHANNEL_FILE\n/)
      const secret = key(9)
      const extra = await closing(['--channel-file', file, secret, secret])
      expect(extra.code).toBe(2)
      expect(extra.stderr).not.toContain(secret.slice(2))
      // The lock was released after each run: a store can take the file.
      expect(existsSync(`${file}.lock`)).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('--escrow: deposits only into the named escrow; another is refused before anything is signed', async () => {
    const env = { MPPKIT_PRIVATE_KEY: key(4), MPPKIT_RPC_URL: devnet.info.rpcUrl }
    const before = await balance(4)
    const other = `0x${'12'.repeat(20)}`
    const refused = await run([`${base}/session`, '--deposit', '5000', '--escrow', other], env)
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).not.toContain('open a tempo session')
    expect(await balance(4)).toBe(before)
    const paid = await run(
      [`${base}/session`, '--deposit', '5000', '--escrow', other, '--escrow', devnet.info.escrow],
      env,
    )
    expect(paid.code, paid.stderr).toBe(0)
    expect(paid.stdout).toBe('session body')
    const bad = await run([`${base}/session`, '--escrow', 'deadbeef-secret'], env)
    expect(bad.code).toBe(2)
    expect(bad.stderr.split('\n')[0]).toBe(
      'mppkit pay: --escrow takes a contract address (0x and 40 hex digits); the 15 characters given are not one (not shown)',
    )
  })

  it('answers payment-need-voucher mid-stream and gets every chunk of a metered stream', async () => {
    const started = Date.now()
    const { code, stdout, stderr } = await run([
      `${base}/stream`,
      '--deposit',
      '300',
      '--key',
      key(5),
      ...rpc(),
    ])
    expect(code, stderr).toBe(0)
    expect(stdout).toBe('one\ntwo\nthree\nfour\nfive\n')
    expect(stderr).toMatch(/voucher for cumulative/)
    expect(stderr).toMatch(/stream receipt: .*"spent":"500","units":5/)
    expect(stderr).toContain('close receipt')
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  it('exits 1 at once when a stream needs more than --max-deposit allows (the stream ends unpaid)', async () => {
    const started = Date.now()
    const { code, stdout, stderr } = await run([
      `${base}/stream`,
      '--deposit',
      '200',
      '--max-deposit',
      '300',
      '--key',
      key(6),
      ...rpc(),
    ])
    expect(code).toBe(1)
    expect(stdout).toBe('one\ntwo\n')
    expect(stderr).toContain(
      'mppkit pay: the stream ended unpaid: the next voucher (cumulative 300 base units)',
    )
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  // The usage promises a question above 0.10: a metered stream's top-ups (0.10 → 0.20 → 0.40 here) once
  // paid 0.80 without one, only the opening deposit (0.10, not above) having been checked.
  it('asks once at a terminal when a metered stream would top up past 0.10; declined, the stream ends unpaid', async () => {
    const question =
      'mppkit pay: keep paying the metered stream: top up its deposit from 0.1 PathUSD to 0.2 PathUSD and pay ' +
      `vouchers up to 1 PathUSD (--max-deposit), to ${payee.toLowerCase()} (realm cli.test; currency ${devnet.info.tokens.pathUsd})`
    const metered = (more: string[], confirm?: (question: string) => Promise<boolean>) =>
      run([`${base}/metered`, '--key', key(8), ...rpc(), ...more], {}, confirm)
    const asked = (answer: boolean) => {
      const questions: string[] = []
      const confirm = async (q: string) => {
        questions.push(q)
        return answer
      }
      return { questions, confirm }
    }
    const no = asked(false)
    const declined = await metered([], no.confirm)
    expect(declined.code).toBe(1)
    expect(no.questions).toEqual([question])
    expect(declined.stdout).toBe('c1\nc2\n')
    expect(declined.stderr).toContain('mppkit pay: the stream ended unpaid: payment declined')
    expect(declined.stderr).not.toMatch(/voucher for cumulative 0\.15/)
    // Yes once: both top-ups (to 0.20, then 0.40) are paid without another question.
    const yes = asked(true)
    const paid = await metered([], yes.confirm)
    expect(paid.code, paid.stderr).toBe(0)
    expect(paid.stdout).toBe('c1\nc2\nc3\nc4\nc5\nc6\n')
    expect(yes.questions).toEqual([question])
    expect(paid.stderr).toMatch(/stream receipt: .*"spent":"300000"/)
    // The caps still apply once the person said yes.
    const capped = asked(true)
    const stopped = await metered(['--max-deposit', '300000'], capped.confirm)
    expect(stopped.code).toBe(1)
    expect(capped.questions).toHaveLength(1)
    expect(stopped.stdout).toBe('c1\nc2\nc3\nc4\n')
    expect(stopped.stderr).toContain('would take the session past --max-deposit 300000')
    // --yes, and no terminal to answer: no question, within the caps.
    const never = async () => expect.fail('asked despite --yes')
    for (const [more, confirm] of [
      [['--yes'], never],
      [[], undefined],
    ] as const) {
      const result = await metered([...more], confirm)
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toBe('c1\nc2\nc3\nc4\nc5\nc6\n')
    }
  })

  it('explains missing configuration and bad options with exit code 2', async () => {
    const missing = await run([`${base}/charge`], { MPPKIT_PRIVATE_KEY: '', MPPKIT_RPC_URL: '' })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('missing --key')
    expect((await run(['--help'])).code).toBe(0)
    const lines = async (args: string[]) => {
      const { code, stderr } = await run(args)
      return { code, first: stderr.split('\n')[0] }
    }
    expect(await lines([`${base}/charge`, '--foo'])).toEqual({
      code: 2,
      first: 'mppkit pay: unknown option --foo',
    })
    expect(await lines([`${base}/charge`, '--key'])).toEqual({
      code: 2,
      first: 'mppkit pay: --key needs a value',
    })
    expect(await lines([`${base}/charge`, '--max-amount', '1.5'])).toEqual({
      code: 2,
      first: 'mppkit pay: --max-amount takes a whole number of base units (e.g. 1000000), got "1.5"',
    })
    expect(await lines([`${base}/charge`, '--mode', 'pulll'])).toEqual({
      code: 2,
      first: 'mppkit pay: --mode is pull or push, got "pulll"',
    })
  })

  it('names the cause when the server or the RPC is down, or the RPC is not a Tempo node', async () => {
    const port = await closedPort()
    const serverDown = await run([`http://127.0.0.1:${port}/x`, '--key', key(1), ...rpc()])
    expect(serverDown).toMatchObject({ code: 1, stderr: `mppkit pay: ECONNREFUSED 127.0.0.1:${port}\n` })
    // A hosted RPC URL carries its API key in the path or query: errors name the origin only.
    const rpcDown = await run([
      `${base}/charge`,
      '--key',
      key(1),
      '--rpc',
      `http://127.0.0.1:${port}/v2/api-key-0123?token=secret-4567`,
    ])
    expect(rpcDown.code).toBe(1)
    expect(rpcDown.stderr).toBe(
      `mppkit pay: could not reach the Tempo RPC at http://127.0.0.1:${port}: ECONNREFUSED 127.0.0.1:${port}\n`,
    )
    const notTempo = await run([`${base}/charge`, '--key', key(1), '--rpc', `${base}/charge?key=secret-4567`])
    expect(notTempo.code).toBe(1)
    expect(notTempo.stderr).toMatch(
      /^mppkit pay: http:\/\/127\.0\.0\.1:\d+ is not a Tempo JSON-RPC node: eth_chainId answered "\{/,
    )
    expect(notTempo.stderr).not.toContain('secret-4567')
  })

  it('pays through an RPC URL with user:password@ (sent as Basic auth), never printing them', async () => {
    // A node behind Basic auth: every JSON-RPC call without the credentials is refused.
    const expected = `Basic ${Buffer.from('rpcuser:SuperSecretPw').toString('base64')}`
    let refused = 0
    const proxy = createHttpServer(async (req, res) => {
      if (req.headers.authorization !== expected) {
        refused++
        res.writeHead(401).end()
        return
      }
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const answer = await fetch(devnet.info.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: Buffer.concat(chunks),
      })
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text())
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = proxy.address() as AddressInfo
      const paid = await run([
        `${base}/charge`,
        '--key',
        key(1),
        '--yes',
        '--rpc',
        `http://rpcuser:SuperSecretPw@127.0.0.1:${port}/`,
      ])
      expect(paid.stderr).not.toContain('SuperSecretPw')
      expect(paid.code).toBe(0)
      expect(refused).toBe(0)
    } finally {
      proxy.close()
    }
  })

  it('never echoes a -H value (often a credential) in its usage errors', async () => {
    const typo = await run([
      `${base}/charge`,
      '--key',
      key(1),
      ...rpc(),
      '-H',
      'Authorization Bearer sk_live_0123',
    ])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toMatch(/-H takes "Name: value"/)
    expect(typo.stderr).not.toContain('sk_live_0123')
  })
})

// Without a node: a server whose 402 and problem details are hostile, and an RPC that answers eth_chainId
// only (enough to reach the question asked before paying).
describe('mppkit pay (tempo): what reaches the terminal', () => {
  const controls = /[\u0000-\u001f\u007f-\u009f]/
  const key = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'
  const servers: HttpServer[] = []
  let api: string
  let rpc: string
  const listen = async (handler: RequestListener) => {
    const server = createHttpServer(handler)
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }
  beforeAll(async () => {
    // `\\u000d` in the header decodes to a CR: the realm would rewrite the line the person confirms.
    const fake =
      '\\u000d\\u001b[2Kmppkit pay: pay 0.001 USDC (1000 base units) to 0x...dEaD (realm api.example)'
    const request = Buffer.from(
      JSON.stringify({
        amount: '900000',
        currency: '0x20c0000000000000000000000000000000000000',
        recipient: '0x000000000000000000000000000000000000dEaD',
        methodDetails: { chainId: 4217 },
      }),
    ).toString('base64url')
    api = await listen((request_, response) => {
      if (request_.url === '/spoof') {
        response.writeHead(402, {
          'www-authenticate': `Payment id="c1", realm="api${fake}", method="tempo", intent="charge", request="${request}"`,
        })
        response.end('{}')
        return
      }
      // Nothing Tempo can pay, and a detail that would rewrite the line.
      response.writeHead(402, {
        'content-type': 'application/problem+json',
        'www-authenticate': 'Payment id="c2", realm="r", method="other", intent="charge", request="e30"',
      })
      response.end(JSON.stringify({ detail: 'pay\r\u001b[2Kmppkit pay: paid, receipt 0xabc' }))
    })
    rpc = await listen((request_, response) => {
      let body = ''
      request_.on('data', (chunk) => (body += chunk))
      request_.on('end', () => {
        const { id, method } = JSON.parse(body) as { id: number; method: string }
        response.setHeader('content-type', 'application/json')
        response.end(
          JSON.stringify(
            method === 'eth_chainId'
              ? { jsonrpc: '2.0', id, result: '0x1079' }
              : { jsonrpc: '2.0', id, error: { code: -32000, message: 'no' } },
          ),
        )
      })
    })
  })
  afterAll(async () => {
    for (const server of servers) {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
  const run = async (args: string[], confirm?: (question: string) => Promise<boolean>) => {
    let stdout = ''
    let stderr = ''
    const io: Io = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), confirm }
    return { code: await pay(args, io), stdout, stderr }
  }

  it("prints the server's realm without control characters in the line a person confirms", async () => {
    const asked: string[] = []
    const result = await run([`${api}/spoof`, '--rpc', rpc, '--key', key], async (question) => {
      asked.push(question)
      return false
    })
    expect(result.code).toBe(1)
    expect(asked).toHaveLength(1)
    expect(asked[0]).not.toMatch(controls)
    expect(asked[0]).toBe(
      'mppkit pay: pay 0.9 0x20c0000000000000000000000000000000000000 (900000 base units) to ' +
        '0x000000000000000000000000000000000000dEaD (realm api??[2Kmppkit pay: pay 0.001 USDC (1000 base ' +
        'units) to 0x...dEaD (realm api.example); currency 0x20c0000000000000000000000000000000000000)',
    )
    expect(result.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
  })

  it("prints a 402's problem detail without control characters", async () => {
    const result = await run([`${api}/unpayable`, '--rpc', rpc, '--key', key])
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      `mppkit pay: ${api}/unpayable still asks for payment (402): pay??[2Kmppkit pay: paid, receipt 0xabc\n`,
    )
  })

  it('describes an intent without the control characters of its realm, recipient, currency or symbol', () => {
    const line = describeIntent(
      { kind: 'charge', realm: 'a\rb', recipient: 'c\u001bd', currency: 'e\u009bf', amount: 1n },
      'g\u202eh',
    )
    expect(line).toBe('pay 0.000001 g?h (1 base units) to c?d (realm a?b; currency e?f)')
  })

  it('--currency pays only that TIP-20: an offer in another is refused before any question', async () => {
    const offered = '0x20c0000000000000000000000000000000000000'
    const other = '0x20c0000000000000000000000000000000000001'
    const asked: string[] = []
    const confirm = async (question: string) => {
      asked.push(question)
      return false
    }
    const refused = await run([`${api}/spoof`, '--rpc', rpc, '--key', key, '--currency', other], confirm)
    expect(refused).toMatchObject({ code: 1, stdout: '' })
    expect(refused.stderr).toBe(
      `mppkit pay: ${api}/spoof offers no tempo payment in ${other} (--currency); it offers ${offered}\n`,
    )
    expect(asked).toEqual([])
    // The same token in another case is the same address: paid as far as the question.
    const same = await run(
      [`${api}/spoof`, '--rpc', rpc, '--key', key, '--currency', offered.toUpperCase().replace('0X', '0x')],
      confirm,
    )
    expect(same.code).toBe(1)
    expect(asked).toHaveLength(1)
    const bad = await run([`${api}/spoof`, '--rpc', rpc, '--key', key, '--currency', key])
    expect(bad.code).toBe(2)
    expect(bad.stderr.split('\n')[0]).toBe(
      'mppkit pay: --currency takes a TIP-20 token address (0x and 40 hex digits); the 66 characters given are not one (not shown)',
    )
    expect(bad.stderr).not.toContain(key.slice(2, 20))
  })

  it('never echoes a key given without --key', async () => {
    for (const args of [
      [`${api}/spoof`, '--yes', key],
      [key],
      [`${api}/spoof`, 'sk_live_0123456789abcdef'],
    ]) {
      const result = await run([...args, '--rpc', rpc])
      expect(result.code, args.join(' ')).toBe(2)
      expect(result.stderr).not.toContain(key.slice(2, 20))
      expect(result.stderr).not.toContain('sk_live')
    }
  })

  it('mppkit pay knows which of its options take a value, so that the value of --rpc is never probed as <url>', () => {
    for (const [flag, option] of Object.entries(options)) {
      const known = Object.hasOwn(commonOptions, flag)
        ? commonOptions[flag as keyof typeof commonOptions]
        : railOptions[flag as keyof typeof railOptions]
      expect(known?.value, flag).toBe(option.value)
    }
  })
})
