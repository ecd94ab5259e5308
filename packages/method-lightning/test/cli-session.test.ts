import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Challenge, Credential } from '@mppkit/core'
import type { Io } from '@mppkit/core/cli'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { getChannelBalance, getInvoices } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { close, pay } from '../src/cli.js'
import { chargeServer, type SessionMeter, sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// `mppkit pay` and `mppkit close` of @mppkit/method-lightning/cli with lightning/session challenges: a real
// HTTP server on loopback (the session method on the LND simulator's payee node) and the payer's node.

// The `mppkit` bin runs the built packages (core's, which imports this one's dist).
const bin = fileURLToPath(new URL('../../core/bin/mppkit.js', import.meta.url))
const built = ['../../core/dist/bin/mppkit.js', '../dist/cli.js'].every((path) =>
  existsSync(fileURLToPath(new URL(path, import.meta.url))),
)
if (!built)
  console.warn(
    '[skip] the mppkit bin test: build @mppkit/core and @mppkit/method-lightning first (npm run build)',
  )

let network: Lightning
const https: HttpServer[] = []
const servers: Array<{ close(): Promise<void> }> = []
/** The default server: a session at 100 sat a request (deposit 2,000 sat: price × 20), and a charge. */
let base: string
/** Another origin: 300 sat a request on a 600 sat deposit (a top-up every second request). */
let small: string
/** A third origin, whose server loses its sessions (a new store) on the next bearer request once `lose`. */
let lossy: string
const lossyState = { lose: false }
/** While `down`, the `/flaky` route answers every open credential 503 before its server sees it. */
const flaky = { down: false }
/** While `down`, the small server's `/flakytopup` route answers every topUp credential 503 before its server sees it. */
const flakyTopUp = { down: false }
/**
 * A fourth origin, as small's (300 sat a request on a 600 sat deposit; 400 on `/pricier`) on a clock of its own: the next
 * `unavailable` topUp credentials are answered 503 before its server sees them; the others reach it, an
 * hour later by its clock when `expire` (their challenge has expired there: refused for good).
 */
let skewed: string
const skewedTopUp = { unavailable: 0, expire: false }

async function listen(handler: (request: Request) => Promise<Response>): Promise<string> {
  const http = createHttpServer(toNodeListener(handler))
  https.push(http)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

beforeAll(async () => {
  network = await startLightning()
  const lnd = lndFor(network.info.nodes.payee)
  const secrets = ['lightning-cli-session-secret-0123456789abcdef']
  const server = createServer({
    realm: 'cli.test',
    secrets,
    methods: [chargeServer({ lnd }), sessionServer({ lnd })],
  })
  const topUps = createServer({
    realm: 'cli.test',
    secrets,
    methods: [sessionServer({ lnd, depositSats: 600 })],
  })
  servers.push(server, topUps)
  const body = async () => new Response('session body')
  const routes: Record<string, (request: Request) => Promise<Response>> = {
    '/session': server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '100' } }] },
      body,
    ),
    // A deposit of 20,000 sat (1,000 × 20): above the default cap of 10,000.
    '/pricey': server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1000' } }] },
      body,
    ),
    // Both intents, the session offered first.
    '/both': server.protect(
      {
        offers: [
          { method: 'lightning', intent: 'session', request: { amount: '100' } },
          { method: 'lightning', intent: 'charge', request: { amount: '250' } },
        ],
      },
      async (_request, payment) => new Response(`paid by ${payment.challenge.intent}`),
    ),
    // A server that serves but never closes: every close credential is answered 503.
    '/noclose': async (request) => {
      const [token] = Credential.extract(request.headers.get('authorization'))
      const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
      if (action === 'close') return new Response('closing is down', { status: 503 })
      return routes['/session']!(request)
    },
    '/flaky': async (request) => {
      const [token] = Credential.extract(request.headers.get('authorization'))
      const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
      if (action === 'open' && flaky.down) return new Response('opening is down', { status: 503 })
      return routes['/session']!(request)
    },
    // Billed per chunk (the first with the request): 6 chunks of 100 sat on a deposit of 2,000.
    '/stream': server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '100' } }] },
      async (_request, payment) =>
        (payment.context as SessionMeter).sse(['c1', 'c2', 'c3', 'c4', 'c5', 'c6']),
    ),
  }
  base = await listen((request) => (routes[new URL(request.url).pathname] ?? routes['/session']!)(request))
  const smallRoutes: Record<string, (request: Request) => Promise<Response>> = {
    '/': topUps.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '300' } }] },
      body,
    ),
    '/flakytopup': async (request) => {
      const [token] = Credential.extract(request.headers.get('authorization'))
      const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
      if (action === 'topUp' && flakyTopUp.down) return new Response('topping up is down', { status: 503 })
      return smallRoutes['/']!(request)
    },
    // 4 chunks of 300 sat: the third needs a top-up of the 600 sat deposit.
    '/stream': topUps.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '300' } }] },
      async (_request, payment) => (payment.context as SessionMeter).sse(['s1', 's2', 's3', 's4']),
    ),
  }
  small = await listen((request) => smallRoutes[new URL(request.url).pathname]!(request))
  const skew = { ms: 0 }
  const skewedServer = createServer({
    realm: 'cli.test',
    secrets,
    methods: [sessionServer({ lnd, depositSats: 600, idleTimeoutSeconds: 86_400 })],
    now: () => Date.now() + skew.ms,
  })
  servers.push(skewedServer)
  const skewedRoutes: Record<string, (request: Request) => Promise<Response>> = {
    '/': skewedServer.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '300' } }] },
      body,
    ),
    '/pricier': skewedServer.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '400' } }] },
      body,
    ),
  }
  const skewedRoute = (request: Request) => skewedRoutes[new URL(request.url).pathname]!(request)
  skewed = await listen(async (request) => {
    const [token] = Credential.extract(request.headers.get('authorization'))
    const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
    if (action !== 'topUp') return skewedRoute(request)
    if (skewedTopUp.unavailable > 0) {
      skewedTopUp.unavailable--
      return new Response('topping up is down', { status: 503 })
    }
    if (!skewedTopUp.expire) return skewedRoute(request)
    skew.ms = 3_600_000
    try {
      return await skewedRoute(request)
    } finally {
      skew.ms = 0
    }
  })
  const lossyServer = () => {
    const core = createServer({
      realm: 'cli.test',
      secrets,
      methods: [sessionServer({ lnd, depositSats: 500 })],
    })
    servers.push(core)
    return core.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '50' } }] },
      body,
    )
  }
  let lossyHandler = lossyServer()
  lossy = await listen(async (request) => {
    const [token] = Credential.extract(request.headers.get('authorization'))
    const action = token ? (Credential.decode(token).payload as { action?: string }).action : undefined
    if (action === 'bearer' && lossyState.lose) {
      lossyState.lose = false
      lossyHandler = lossyServer()
    }
    return lossyHandler(request)
  })
})
afterAll(async () => {
  for (const http of https) {
    http.closeAllConnections()
    await new Promise((resolve) => http.close(resolve))
  }
  for (const server of servers) await server.close()
  await network?.stop()
})

const node = () => {
  const { socket, cert, macaroon } = network.info.nodes.payer
  return ['--lnd-socket', socket, '--lnd-cert', cert, '--lnd-macaroon', macaroon, '--network', 'regtest']
}
async function run(
  command: typeof pay,
  args: string[],
  confirm?: (question: string) => Promise<boolean>,
  env: Record<string, string> = {},
) {
  const out = { stdout: '', stderr: '' }
  const io: Io = { stdout: (t) => (out.stdout += t), stderr: (t) => (out.stderr += t), confirm }
  const saved = { ...process.env }
  // A developer's own settings left out.
  delete process.env.MPPKIT_SESSION_FILE
  delete process.env.MPPKIT_LIGHTNING_NETWORK
  Object.assign(process.env, env)
  try {
    return { code: await command(args, io), ...out }
  } finally {
    process.env = saved
  }
}
const payer = () => lndFor(network.info.nodes.payer)
/**
 * The payments the payee's node received (each deposit, top-up and charge paid is one settled invoice of
 * the payee's), with their preimages (the simulator serves no ListPayments).
 */
const payments = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (i) => i.is_confirmed,
  )
const balance = async () => (await getChannelBalance({ lnd: payer() })).channel_balance
/** Satoshis the payer's node received on its invoices (the refunds to the return invoices). */
const refunded = async () =>
  (await getInvoices({ lnd: payer(), limit: 1000 })).invoices.reduce((sum, i) => sum + Number(i.received), 0)
/** The sessions saved in `file`. */
const savedIn = (file: string) =>
  Object.values(
    (JSON.parse(readFileSync(file, 'utf8')) as { sessions: Record<string, Record<string, unknown>> })
      .sessions,
  )
const tempDir = () => mkdtempSync(join(tmpdir(), 'mppkit-ln-cli-'))

/** Never a preimage of the payer's payments, nor its macaroon, in what the command printed. */
async function expectNoSecrets(output: { stdout: string; stderr: string }) {
  const printed = `${output.stdout}${output.stderr}`
  expect(printed).not.toContain(network.info.nodes.payer.macaroon)
  for (const { secret } of await payments()) expect(printed).not.toContain(secret)
}

describe('mppkit pay (lightning): sessions', () => {
  it('opens a session (the deposit paid from the payer node), pays the request and closes it: the refund arrives', async () => {
    const [paid, before, refunds] = [(await payments()).length, await balance(), await refunded()]
    const result = await run(pay, [`${base}/session`, ...node()])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toBe('session body')
    expect(result.stderr).toContain(
      'mppkit pay: lightning/session: deposit 2,000 sat (2000 base units) and pay 100 sat (100 base units) per request (realm cli.test), plus a routing fee of at most 20 sat (--max-fee)\n',
    )
    // The request's receipt and the close's name the session (the deposit's payment hash).
    const reference = /^receipt: \{[^}]*"reference": "([0-9a-f]{64})"/m.exec(result.stderr)?.[1]
    expect(reference, result.stderr).toBeDefined()
    await expect(payments()).resolves.toContainEqual(expect.objectContaining({ id: reference, tokens: 2000 }))
    // Closed after the request: 2,000 deposited, 100 spent, 1,900 refunded to the return invoice.
    expect(result.stderr).toMatch(
      new RegExp(
        `^close receipt: \\{[^}]*"refundSats": 1900,\\s*"refundStatus": "succeeded"[^}]*"reference": "${reference}"`,
        'm',
      ),
    )
    expect(result.stderr).not.toContain('stays open')
    // The deposit was announced once, as the opening (never as a top-up).
    expect(result.stderr.match(/^mppkit pay: /gm)).toHaveLength(1)
    // One payment left the node (the deposit), the refund came back: the request cost 100 sat.
    expect((await payments()).length).toBe(paid + 1)
    expect(await refunded()).toBe(refunds + 1900)
    expect(await balance()).toBe(before - 100)
    await expectNoSecrets(result)
  })

  it('--session-file --keep-open: the next run pays on the saved session (one deposit in all); mppkit close closes it, refunded', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      const [paid, refunds] = [(await payments()).length, await refunded()]
      const first = await run(pay, [`${base}/session`, ...node(), '--keep-open', '--session-file', file])
      expect(first.code, first.stderr).toBe(0)
      expect(first.stderr).toContain('lightning/session: deposit 2,000 sat')
      const named =
        /lightning session ([0-9a-f]{64}) stays open at (\S+) \(deposit 2000 sat, 1900 sat left/.exec(
          first.stderr,
        )
      expect(named, first.stderr).not.toBeNull()
      expect(named![2]).toBe(base)
      expect(first.stderr).toContain(
        `saved in ${file}: \`--session-file\` pays on it again, \`mppkit close --session-file ${file}\` closes it`,
      )
      expect(savedIn(file)).toMatchObject([{ sessionId: named![1], deposit: '2000', spent: '100' }])
      // Owner-only (it holds the preimage), and the lock released after the run.
      expect(statSync(file).mode & 0o777).toBe(0o600)
      expect(existsSync(`${file}.lock`)).toBe(false)
      expect((await payments()).length).toBe(paid + 1)

      const second = await run(pay, [`${base}/session`, ...node(), '--keep-open', '--session-file', file])
      expect(second.code, second.stderr).toBe(0)
      expect(second.stdout).toBe('session body')
      expect(second.stderr).toContain(
        `mppkit pay: saved lightning session ${named![1]} (${base}, deposit 2000 sat`,
      )
      expect(second.stderr).not.toContain('deposit 2,000 sat')
      expect(second.stderr).toContain('lightning/session: pay 100 sat (100 base units) (realm cli.test)\n')
      expect(savedIn(file)).toMatchObject([{ sessionId: named![1], spent: '200' }])
      // No new deposit: the node paid nothing more.
      expect((await payments()).length).toBe(paid + 1)
      await expectNoSecrets(second)

      // Another server's URL: nothing of it is saved, nothing closed.
      const other = await run(close, ['--session-file', file, '--network', 'regtest', 'http://localhost:1/x'])
      expect(other).toMatchObject({
        code: 0,
        stdout: `no lightning session on regtest is saved in ${file} for http://localhost:1\n`,
      })
      // Another network's: named (with the command that closes it), left in the file, exit 1.
      expect(await run(close, ['--session-file', file])).toMatchObject({
        code: 1,
        stdout: '',
        stderr:
          `mppkit close: saved session ${JSON.stringify(base)} in ${file} is a session of network regtest, ` +
          'not of mainnet, which this client pays on: skipped, left in the file as it is; ' +
          `\`mppkit close --session-file ${file} --network regtest\` closes it\n`,
      })
      expect(savedIn(file)).toHaveLength(1)
      // All of them (from the environment): closed at the URL it was paid on, refunded, the file emptied.
      const closed = await run(close, [], undefined, {
        MPPKIT_SESSION_FILE: file,
        MPPKIT_LIGHTNING_NETWORK: 'regtest',
      })
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stdout).toMatch(
        new RegExp(
          `^closed lightning session ${named![1]} \\(${base}\\): \\{.*"refundSats":1800,"refundStatus":"succeeded"`,
        ),
      )
      expect(savedIn(file)).toEqual([])
      expect(await refunded()).toBe(refunds + 1800)
      expect((await payments()).length).toBe(paid + 1)
      expect(existsSync(`${file}.lock`)).toBe(false)
      await expectNoSecrets(closed)
      expect((await run(close, ['--session-file', file, '--network', 'regtest'])).stdout).toMatch(
        /^no lightning session on regtest is saved/,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a deposit above --max-deposit (default 10,000 sat) or a price above --max-amount, paying nothing', async () => {
    const paid = (await payments()).length
    const invoices = async () => (await getInvoices({ lnd: payer(), limit: 1000 })).invoices.length
    const created = await invoices()
    const capped = await run(pay, [`${base}/session`, ...node(), '--max-deposit', '1999'])
    expect(capped.code).toBe(1)
    expect(capped.stdout).toBe('')
    expect(capped.stderr).toBe(
      'mppkit pay: refusing to deposit 2000 base units of sat: above the cap of 1999 base units; raise it with --max-deposit <base units>\n',
    )
    const pricey = await run(pay, [`${base}/pricey`, ...node()])
    expect(pricey.code).toBe(1)
    expect(pricey.stderr).toBe(
      'mppkit pay: refusing to deposit 20000 base units of sat: above the cap of 10000 base units; raise it with --max-deposit <base units>\n',
    )
    const price = await run(pay, [`${base}/session`, ...node(), '--max-amount', '99'])
    expect(price.code).toBe(1)
    expect(price.stderr).toMatch(
      /^mppkit pay: refusing to pay 100 base units of sat: above the cap of 99 base units/,
    )
    // At a terminal, a deposit above 1,000 sat is asked about first; declined, nothing is paid.
    const asked: string[] = []
    const declined = await run(pay, [`${base}/session`, ...node()], async (question) => {
      asked.push(question)
      return false
    })
    expect(declined.code).toBe(1)
    expect(asked).toEqual([
      'mppkit pay: lightning/session: deposit 2,000 sat (2000 base units) and pay 100 sat (100 base units) per request (realm cli.test), plus a routing fee of at most 20 sat (--max-fee)',
    ])
    // Nothing left the node, and not even a return invoice was created.
    expect((await payments()).length).toBe(paid)
    expect(await invoices()).toBe(created)
  })

  it('a saved session that runs out is topped up: shown, asked above 1,000 sat, and never past --max-deposit', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    const args = [`${small}/`, ...node(), '--keep-open', '--session-file', file]
    const asked: string[] = []
    const ask = (answer: boolean) => async (question: string) => {
      asked.push(question)
      return answer
    }
    try {
      // 300 a request on a deposit of 600 (below 1,000: not asked).
      expect((await run(pay, args, ask(true))).code).toBe(0)
      expect((await run(pay, args, ask(true))).code).toBe(0)
      expect(asked).toEqual([])
      const paid = (await payments()).length
      // The third request needs a top-up of 600 (1,200 in all): past --max-deposit 1000, refused unasked.
      const capped = await run(pay, [...args, '--max-deposit', '1000'], ask(true))
      expect(capped.code).toBe(1)
      expect(capped.stderr).toContain(
        'mppkit pay: refusing to top up the session: deposit 1200 lightning:regtest:sat exceeds the maximum 1000; ' +
          "--max-deposit caps a session's deposit and top-ups together (raise it, or close the session)\n",
      )
      expect(asked).toEqual([])
      // Within the cap, it is asked about (1,200 committed, above 1,000); declined, nothing is paid.
      const declined = await run(pay, args, ask(false))
      expect(declined.code).toBe(1)
      expect(asked).toHaveLength(1)
      expect(asked[0]).toMatch(
        /^mppkit pay: top up lightning session [0-9a-f]{64} \(http:\/\/127\.0\.0\.1:\d+\): deposit 600 sat → 1200 sat, plus a routing fee of at most 10 sat \(--max-fee\)$/,
      )
      expect(declined.stderr).toContain('mppkit pay: top-up declined: nothing was paid for it\n')
      expect(declined.stderr).toMatch(/lightning session [0-9a-f]{64} stays open/)
      expect((await payments()).length).toBe(paid)
      expect(savedIn(file)).toMatchObject([{ deposit: '600', spent: '600' }])
      expect(savedIn(file)[0]).not.toHaveProperty('pendingTopUp')
      // Said yes: topped up, shown, and paid.
      const topped = await run(pay, args, ask(true))
      expect(topped.code, topped.stderr).toBe(0)
      expect(topped.stdout).toBe('session body')
      expect(asked).toHaveLength(2)
      expect(topped.stderr).toMatch(
        /^mppkit pay: top up lightning session [0-9a-f]{64} .*: deposit 600 sat → 1200 sat/m,
      )
      expect((await payments()).length).toBe(paid + 1)
      expect(savedIn(file)).toMatchObject([{ deposit: '1200', spent: '900' }])
      // Closed by a run without --keep-open, after its own request: 1,200 paid in, 1,200 spent.
      const closed = await run(pay, [`${small}/`, ...node(), '--session-file', file, '--yes'])
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stderr).toMatch(/^close receipt: \{[^}]*"refundSats": 0/m)
      expect(savedIn(file)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a session whose server refuses the close stays open, saved and named; mppkit close then exits 1 and keeps it', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      const left = await run(pay, [`${base}/noclose`, ...node(), '--session-file', file])
      expect(left.code, left.stderr).toBe(0)
      expect(left.stdout).toBe('session body')
      expect(left.stderr).toContain('mppkit pay: closing the session failed: HTTP 503\n')
      const [saved] = savedIn(file)
      expect(left.stderr).toContain(
        `mppkit pay: lightning session ${saved!.sessionId} stays open at ${base} (deposit 2000 sat, 1900 sat left as counted here): saved in ${file}`,
      )
      const refused = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(refused.code).toBe(1)
      expect(refused.stdout).toBe('')
      expect(refused.stderr).toBe(
        `mppkit close: closing lightning session ${saved!.sessionId} (${base}) failed: HTTP 503; it stays saved (deposit 2000 sat): ` +
          'run this again later (its server also closes it after its idle timeout, refunding the return invoice)\n',
      )
      expect(savedIn(file)).toMatchObject([{ sessionId: saved!.sessionId }])
      await expectNoSecrets(refused)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a paid open its server has not taken is named pending by mppkit close (exit 1, kept), then closed once it gets through', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      flaky.down = true
      const before = (await payments()).length
      const unopened = await run(pay, [`${base}/flaky`, ...node(), '--session-file', file, '--keep-open'])
      expect(unopened.code).toBe(1)
      expect((await payments()).length).toBe(before + 1) // the deposit
      const [saved] = savedIn(file)
      expect(saved).toMatchObject({ opened: false })
      const pending = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(pending.code).toBe(1)
      expect(pending.stdout).toBe('')
      expect(pending.stderr).toContain(
        `mppkit close: lightning session ${saved!.sessionId} (${base}) cannot be closed yet: its deposit of 2000 sat is paid but its open has not reached its server (the server answered 503); it stays saved: run this again later, or, if its server is gone for good, ` +
          `\`mppkit close --session-file ${file} --abandon ${saved!.sessionId}\` gives it up (its proof of payment kept in the file)\n`,
      )
      expect(savedIn(file)).toMatchObject([{ sessionId: saved!.sessionId }])
      await expectNoSecrets(pending)
      // A payment to that server meanwhile names it and pays no second deposit.
      const held = await run(pay, [`${base}/flaky`, ...node(), '--session-file', file, '--keep-open'])
      expect(held.code).toBe(1)
      expect(held.stderr).toContain(
        `mppkit pay: saved lightning session ${saved!.sessionId} (${base}, deposit 2000 sat, paid) from ${file} is pending: its open has not reached its server`,
      )
      expect((await payments()).length).toBe(before + 1)
      await expectNoSecrets(held)
      // The server takes opens again: the saved open goes through, then the close refunds it.
      flaky.down = false
      const refundedBefore = await refunded()
      const closed = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stdout).toContain(`closed lightning session ${saved!.sessionId} (${base})`)
      // The open, a paid request, is charged its price (100 sat) when it gets through.
      expect(await refunded()).toBe(refundedBefore + 1900)
      expect(savedIn(file)).toEqual([])
      expect((await payments()).length).toBe(before + 1)
    } finally {
      flaky.down = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('mppkit pay without --keep-open whose open is answered 503 does not close the session: named pending, kept in the file (exit 1); mppkit close refunds it once the open gets through', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      flaky.down = true
      const [paid, refunds] = [(await payments()).length, await refunded()]
      const result = await run(pay, [`${base}/flaky`, ...node(), '--session-file', file])
      expect(result.code).toBe(1)
      expect((await payments()).length).toBe(paid + 1) // the deposit
      const [saved] = savedIn(file)
      expect(saved).toMatchObject({ opened: false, deposit: '2000' })
      // Never a close on the open's challenge (answered session-not-found, read as closed: the record
      // deleted, the deposit lost).
      expect(result.stderr).toContain(
        `mppkit pay: lightning session ${saved!.sessionId} (${base}) is pending: its deposit of 2000 sat is paid but its open did not reach its server (the server answered 503), so it was not closed: it stays saved in ${file}: \`mppkit close --session-file ${file}\` sends its open again and closes it (refund to the return invoice), or, if its server is gone for good, ` +
          `\`mppkit close --session-file ${file} --abandon ${saved!.sessionId}\` gives it up (its proof of payment kept in the file)\n`,
      )
      expect(result.stderr).not.toContain('closed the session already')
      expect(result.stderr).not.toContain('stays open')
      expect(await refunded()).toBe(refunds)
      await expectNoSecrets(result)
      // The server takes opens again: mppkit close gets the open through (a paid request: 100 sat), then
      // closes it, refunded.
      flaky.down = false
      const closed = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stdout).toMatch(
        new RegExp(`^closed lightning session ${saved!.sessionId} \\(${base}\\): \\{.*"refundSats":1900`),
      )
      expect(await refunded()).toBe(refunds + 1900)
      expect(savedIn(file)).toEqual([])
      expect((await payments()).length).toBe(paid + 1)
    } finally {
      flaky.down = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('mppkit pay --keep-open whose open is answered 503 names the session pending, never as open (exit 1)', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      flaky.down = true
      const result = await run(pay, [`${base}/flaky`, ...node(), '--session-file', file, '--keep-open'])
      expect(result.code).toBe(1)
      const [saved] = savedIn(file)
      expect(saved).toMatchObject({ opened: false, deposit: '2000' })
      expect(result.stderr).toContain(
        `mppkit pay: lightning session ${saved!.sessionId} (${base}) is pending: `,
      )
      expect(result.stderr).not.toContain('stays open')
      await expectNoSecrets(result)
      flaky.down = false
      const closed = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(closed.code, closed.stderr).toBe(0)
      expect(savedIn(file)).toEqual([])
    } finally {
      flaky.down = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('mppkit pay without --keep-open or --session-file whose open is answered 503 says the deposit is paid and names the session (never its preimage), exit 1', async () => {
    try {
      flaky.down = true
      const before = new Set((await payments()).map((invoice) => invoice.id))
      const refunds = await refunded()
      const result = await run(pay, [`${base}/flaky`, ...node()])
      expect(result.code).toBe(1)
      const deposits = (await payments()).filter((invoice) => !before.has(invoice.id))
      expect(deposits).toHaveLength(1)
      expect(deposits[0]).toMatchObject({ tokens: 2000 })
      expect(result.stderr).toContain(
        `mppkit pay: lightning session ${deposits[0]!.id} (${base}) is pending: its deposit of 2000 sat is paid but its open did not reach its server (the server answered 503), so it was not closed: not saved (no --session-file): nothing can send its open again or close it after this run; the session id is the deposit's payment hash, and the payer node's payment of it holds the preimage (the proof of payment to show the server's operator)\n`,
      )
      expect(result.stderr).not.toContain('closed the session already')
      expect(await refunded()).toBe(refunds)
      await expectNoSecrets(result)
    } finally {
      flaky.down = false
    }
  })

  it('a paid top-up its server answered 503 is sent again before a close: pay (no --keep-open) and mppkit close keep the session while it is refused (exit 1), then the refund counts it', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    const args = [`${small}/flakytopup`, ...node(), '--session-file', file]
    try {
      // 300 a request on a deposit of 600: two requests spend it.
      expect((await run(pay, [...args, '--keep-open'])).code).toBe(0)
      expect((await run(pay, [...args, '--keep-open'])).code).toBe(0)
      const [paid, refunds] = [(await payments()).length, await refunded()]
      flakyTopUp.down = true
      // The third pays a top-up of 600 whose credit the server refuses (503); its close must not lose it.
      const third = await run(pay, args)
      expect(third.code).toBe(1)
      expect((await payments()).length).toBe(paid + 1)
      const [saved] = savedIn(file)
      expect(saved).toMatchObject({ deposit: '600', spent: '600', pendingTopUp: { sats: '600' } })
      const notClosed =
        `lightning session: session ${saved!.sessionId} (${small}) was not closed: its top-up of 600 sat is paid ` +
        'but its server has not credited it (the server answered 503), and a close now would refund its deposit without it'
      expect(third.stderr).toContain(`mppkit pay: closing the session failed: ${notClosed}`)
      expect(third.stderr).toContain(
        `mppkit pay: lightning session ${saved!.sessionId} stays open at ${small}`,
      )
      expect(third.stderr).not.toMatch(/^close receipt/m)
      expect(await refunded()).toBe(refunds)
      await expectNoSecrets(third)

      const refused = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(refused.code).toBe(1)
      expect(refused.stdout).toBe('')
      expect(refused.stderr).toContain(
        `mppkit close: closing lightning session ${saved!.sessionId} (${small}) failed: ${notClosed}`,
      )
      expect(refused.stderr).toContain(
        'it stays saved (deposit 600 sat): run this again later (the file keeps its paid top-up, sent again first)\n',
      )
      expect(savedIn(file)).toEqual([saved])
      expect(await refunded()).toBe(refunds)
      await expectNoSecrets(refused)

      // Credited at last (the same preimage: nothing paid again): 1,200 deposited, 600 spent.
      flakyTopUp.down = false
      const closed = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(closed.code, closed.stderr).toBe(0)
      expect(closed.stdout).toMatch(
        new RegExp(`^closed lightning session ${saved!.sessionId} \\(${small}\\): \\{.*"refundSats":600`),
      )
      expect(await refunded()).toBe(refunds + 600)
      expect(savedIn(file)).toEqual([])
      expect((await payments()).length).toBe(paid + 1)
    } finally {
      flakyTopUp.down = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  /** Two runs that spend the 600 sat deposit of a session with `skewed`, kept in `file`. */
  const spendSkewed = async (file: string) => {
    for (let i = 0; i < 2; i++)
      expect((await run(pay, [`${skewed}/`, ...node(), '--keep-open', '--session-file', file])).code).toBe(0)
  }
  const lostLines = (command: string, id: string, hash: string, file: string, after: string) => [
    `${command}: lightning session: the top-up of 600 sat of session ${id} (${skewed}) is paid but will not be ` +
      "credited: the server refused it (HTTP 402 challenge-expired); its proof of payment (the top-up's " +
      `preimage) is kept in the sessionStore under "lost:${id}:topup:${hash}" (lost() lists it); ${after}\n`,
    `${command}: ${file} keeps the proof of that payment (the top-up's preimage, not shown: a secret) until you ` +
      "delete it: show it to the server's operator\n",
  ]
  /** `mppkit close`'s listing of the lost top-up `file` keeps (its key, never its preimage). */
  const listedLines = (id: string, hash: string, file: string) =>
    `mppkit close: lost top-up of lightning session ${id} (${skewed}): 600 sat paid, never credited (the ` +
    `server refused it (HTTP 402 challenge-expired)); ${file} keeps its proof of payment (the top-up's ` +
    `preimage, not shown: a secret) under "lost:${id}:topup:${hash}"\n` +
    "mppkit close: show these proofs to the server's operator; the file keeps them until you delete them\n"
  /** The one record `file` keeps: the lost top-up's, holding the preimage of the invoice the payee was paid. */
  const expectLostTopUp = async (file: string, id: string, hash: string) => {
    const [record, ...others] = savedIn(file)
    expect(others).toEqual([])
    const paid = (await payments()).find((invoice) => invoice.id === hash)!
    expect(record).toMatchObject({ kind: 'topUp', sessionId: id, paymentHash: hash, sats: '600' })
    expect(record!.preimage).toBe(paid.secret)
  }

  it('a paid top-up its server refuses for good is reported by mppkit close, its proof kept in the file (never printed), and the session closed all the same: exit 1', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      await spendSkewed(file)
      const paid = (await payments()).length
      // The third request pays a top-up of 600 its server does not answer (503): kept pending.
      skewedTopUp.unavailable = Number.POSITIVE_INFINITY
      const third = await run(pay, [`${skewed}/`, ...node(), '--keep-open', '--session-file', file])
      expect(third.code).toBe(1)
      expect((await payments()).length).toBe(paid + 1)
      const [saved] = savedIn(file) as [{ sessionId: string; pendingTopUp: { challenge: string } }]
      expect(saved).toMatchObject({ deposit: '600', spent: '600', pendingTopUp: { sats: '600' } })
      const hash = Challenge.parse(saved.pendingTopUp.challenge).request.paymentHash as string
      const refunds = await refunded()

      // Its challenge has expired at its server by the time it is sent again: refused for good.
      skewedTopUp.unavailable = 0
      skewedTopUp.expire = true
      const closed = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(closed.code).toBe(1)
      expect(closed.stdout).toBe(
        `closed lightning session ${saved.sessionId} (${skewed}) (its refund goes to the return invoice; its lost top-up is reported on stderr)\n`,
      )
      expect(closed.stderr).toBe(
        lostLines(
          'mppkit close',
          saved.sessionId,
          hash,
          file,
          'the session was closed: its server refunds what it did not spend of the deposit to the return invoice',
        ).join('') + listedLines(saved.sessionId, hash, file),
      )
      await expectLostTopUp(file, saved.sessionId, hash)
      // The deposit was spent: nothing to refund; nothing paid again.
      expect(await refunded()).toBe(refunds)
      expect((await payments()).length).toBe(paid + 1)
      await expectNoSecrets(closed)
      // No session left to close (the lost record is not one).
      const again = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(again.code).toBe(0)
      expect(again.stdout).toBe(`no lightning session on regtest is saved in ${file}\n`)
      // Listed on every run while the file keeps it.
      expect(again.stderr).toBe(listedLines(saved.sessionId, hash, file))
      await expectNoSecrets(again)
    } finally {
      skewedTopUp.unavailable = 0
      skewedTopUp.expire = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("mppkit pay's final close sends a paid top-up again (to the URL it was paid on); refused for good, the session is closed all the same, the top-up reported and its proof kept in the file: exit 1", async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    const args = ['--session-file', file, ...node()]
    try {
      // 300 of the 600 sat deposit spent; a request of 400 pays a top-up its server does not answer (503).
      expect((await run(pay, [`${skewed}/`, ...args, '--keep-open'])).code).toBe(0)
      const paid = (await payments()).length
      skewedTopUp.unavailable = Number.POSITIVE_INFINITY
      expect((await run(pay, [`${skewed}/pricier`, ...args, '--keep-open'])).code).toBe(1)
      expect((await payments()).length).toBe(paid + 1)
      const [saved] = savedIn(file) as [{ sessionId: string; pendingTopUp: { challenge: string } }]
      expect(saved).toMatchObject({ spent: '300', pendingTopUp: { sats: '600', url: `${skewed}/pricier` } })
      const hash = Challenge.parse(saved.pendingTopUp.challenge).request.paymentHash as string

      // A request of 300 is paid from what is left; the close that ends the run sends the top-up again,
      // by when its challenge has expired at its server: refused for good. The request was paid: only
      // the lost top-up fails the run.
      skewedTopUp.unavailable = 0
      skewedTopUp.expire = true
      const result = await run(pay, [`${skewed}/`, ...args])
      expect(result.code, result.stderr).toBe(1)
      expect(result.stdout).toBe('session body')
      for (const line of lostLines(
        'mppkit pay',
        saved.sessionId,
        hash,
        file,
        'the session was closed: its server refunds what it did not spend of the deposit to the return invoice',
      ))
        expect(result.stderr).toContain(line)
      expect(result.stderr).not.toContain('closing the session failed')
      expect(result.stderr).not.toContain('stays open')
      await expectLostTopUp(file, saved.sessionId, hash)
      expect((await payments()).length).toBe(paid + 1)
      await expectNoSecrets(result)
    } finally {
      skewedTopUp.unavailable = 0
      skewedTopUp.expire = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a lost session in the file is reported and the others are closed (or paid on) in the same run: mppkit close exits 1, mppkit pay goes on', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    const keys = () =>
      Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { sessions: Record<string, unknown> }).sessions)
    /** A normal session (small's) and one of base's whose paid open never got through, its challenge expired. */
    const setUp = async () => {
      expect((await run(pay, [`${small}/`, ...node(), '--keep-open', '--session-file', file])).code).toBe(0)
      flaky.down = true
      expect((await run(pay, [`${base}/flaky`, ...node(), '--keep-open', '--session-file', file])).code).toBe(
        1,
      )
      flaky.down = false
      const json = JSON.parse(readFileSync(file, 'utf8')) as {
        sessions: Record<string, { challenge: string; sessionId: string }>
      }
      const unopened = json.sessions[base]!
      unopened.challenge = unopened.challenge.replace(/expires="[^"]*"/, 'expires="2020-01-01T00:00:00.000Z"')
      writeFileSync(file, JSON.stringify(json), { mode: 0o600 })
      return { normal: json.sessions[small]!.sessionId, lost: unopened.sessionId }
    }
    const report = (id: string) =>
      `lightning session: the deposit of session ${id} (${base}) was paid but its open was never confirmed and can no longer be sent`
    try {
      const first = await setUp()
      const refunds = await refunded()
      const closed = await run(close, ['--session-file', file, '--network', 'regtest'])
      expect(closed.code).toBe(1)
      expect(closed.stderr).toContain(`mppkit close: ${report(first.lost)}`)
      expect(closed.stdout).toMatch(
        new RegExp(`^closed lightning session ${first.normal} \\(${small}\\): \\{.*"refundSats":300`),
      )
      expect(await refunded()).toBe(refunds + 300)
      expect(keys()).toEqual([`lost:${first.lost}`])
      await expectNoSecrets(closed)

      // mppkit pay reports it too, and pays on the saved session (no new deposit).
      const second = await setUp()
      const paid = (await payments()).length
      const paying = await run(pay, [`${small}/`, ...node(), '--keep-open', '--session-file', file])
      expect(paying.code, paying.stderr).toBe(0)
      expect(paying.stdout).toBe('session body')
      expect(paying.stderr).toContain(`mppkit pay: ${report(second.lost)}`)
      expect(paying.stderr).toContain(`mppkit pay: saved lightning session ${second.normal} (${small}`)
      expect((await payments()).length).toBe(paid)
      await expectNoSecrets(paying)
      expect(keys().sort()).toEqual([small, `lost:${first.lost}`, `lost:${second.lost}`].sort())
      // Reported once: the next close closes the other, exit 0.
      expect((await run(close, ['--session-file', file, '--network', 'regtest'])).code).toBe(0)
    } finally {
      flaky.down = false
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a saved session its server lost is dropped, and the fresh challenge paid within the same run (a new deposit, shown)', async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    try {
      const kept = await run(pay, [lossy, ...node(), '--keep-open', '--session-file', file])
      expect(kept.code, kept.stderr).toBe(0)
      const [lost] = savedIn(file)
      const paid = (await payments()).length
      lossyState.lose = true
      const again = await run(pay, [lossy, ...node(), '--keep-open', '--session-file', file])
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toBe('session body')
      expect(again.stderr).toContain(`mppkit pay: saved lightning session ${lost!.sessionId}`)
      // Its bearer refused session-not-found: a new deposit, announced like the first.
      expect(again.stderr).toContain('mppkit pay: lightning/session: deposit 500 sat (500 base units)')
      expect((await payments()).length).toBe(paid + 1)
      const [opened] = savedIn(file)
      expect(opened!.sessionId).not.toBe(lost!.sessionId)
      expect(again.stderr).toContain(`lightning session ${opened!.sessionId} stays open`)
      expect((await run(close, ['--session-file', file, '--network', 'regtest'])).code).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a session saved for another server does not hide this server's deposit: shown, capped and asked about", async () => {
    const dir = tempDir()
    const file = join(dir, 'sessions.json')
    const asked: string[] = []
    const no = async (question: string) => {
      asked.push(question)
      return false
    }
    try {
      const kept = await run(pay, [`${small}/`, ...node(), '--keep-open', '--session-file', file])
      expect(kept.code, kept.stderr).toBe(0)
      const paid = (await payments()).length
      const declined = await run(pay, [`${base}/session`, ...node(), '--session-file', file], no)
      expect(declined.code).toBe(1)
      expect(declined.stderr).toContain(`mppkit pay: saved lightning session`)
      expect(asked).toEqual([
        'mppkit pay: lightning/session: deposit 2,000 sat (2000 base units) and pay 100 sat (100 base units) per request (realm cli.test), plus a routing fee of at most 20 sat (--max-fee)',
      ])
      const capped = await run(pay, [
        `${base}/session`,
        ...node(),
        '--session-file',
        file,
        '--max-deposit',
        '1999',
      ])
      expect(capped.code).toBe(1)
      expect(capped.stderr).toContain(
        'mppkit pay: refusing to deposit 2000 base units of sat: above the cap of 1999 base units; raise it with --max-deposit <base units>\n',
      )
      expect((await payments()).length).toBe(paid)
      // The other server's session is left as it was, and named.
      expect(capped.stderr).toMatch(
        /lightning session [0-9a-f]{64} stays open at http:\/\/127\.0\.0\.1:\d+ \(deposit 600 sat/,
      )
      expect(savedIn(file)).toHaveLength(1)
      expect((await run(close, ['--session-file', file, '--network', 'regtest'])).code).toBe(0)
      expect(savedIn(file)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('pays a charge when both are offered, unless --session-file or --keep-open asks for a session', async () => {
    const charge = await run(pay, [`${base}/both`, ...node()])
    expect(charge.code, charge.stderr).toBe(0)
    expect(charge.stdout).toBe('paid by charge')
    expect(charge.stderr).toMatch(/^mppkit pay: lightning\/charge: pay 250 sat/)
    expect(charge.stderr).not.toContain('close receipt')
    const dir = tempDir()
    try {
      const session = await run(pay, [`${base}/both`, ...node(), '--session-file', join(dir, 's.json')])
      expect(session.code, session.stderr).toBe(0)
      expect(session.stdout).toBe('paid by session')
      expect(session.stderr).toMatch(/^mppkit pay: lightning\/session: deposit 2,000 sat/)
      expect(session.stderr).toContain('close receipt')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    // --keep-open without a file is not refused (as Tempo's): the session is named, with how it ends.
    const kept = await run(pay, [`${base}/both`, ...node(), '--keep-open'])
    expect(kept.code, kept.stderr).toBe(0)
    expect(kept.stdout).toBe('paid by session')
    expect(kept.stderr).toMatch(
      /lightning session [0-9a-f]{64} stays open at .* not saved \(no --session-file\): nothing can pay on it or close it after this run/,
    )
  })

  it('pays a metered stream chunk by chunk from the session, then closes it', async () => {
    const result = await run(pay, [`${base}/stream`, ...node()])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toBe('c1\nc2\nc3\nc4\nc5\nc6\n')
    expect(result.stderr).toMatch(/^stream receipt: /m)
    // 6 chunks of 100 sat spent from 2,000.
    expect(result.stderr).toMatch(/^close receipt: \{[^}]*"refundSats": 1400/m)
  })

  it('tops up a metered stream that runs out mid-way: shown, asked above 1,000 sat; declined, the stream ends unpaid', async () => {
    const asked: string[] = []
    const ask = (answer: boolean) => async (question: string) => {
      asked.push(question)
      return answer
    }
    const paid = (await payments()).length
    const declined = await run(pay, [`${small}/stream`, ...node()], ask(false))
    expect(declined.code).toBe(1)
    expect(declined.stdout).toBe('s1\ns2\n')
    expect(asked).toEqual([
      expect.stringMatching(
        /^mppkit pay: top up lightning session [0-9a-f]{64} \(.*\): deposit 600 sat → 1200 sat/,
      ),
    ])
    expect(declined.stderr).toContain(
      'mppkit pay: the stream ended unpaid: top-up declined: nothing was paid for it\n',
    )
    // Only the deposit was paid; the session was closed all the same (its 600 sat spent: nothing back).
    expect((await payments()).length).toBe(paid + 1)
    expect(declined.stderr).toMatch(/^close receipt: \{[^}]*"refundSats": 0/m)
    // Said yes: every chunk, one top-up.
    const topped = await run(pay, [`${small}/stream`, ...node()], ask(true))
    expect(topped.code, topped.stderr).toBe(0)
    expect(topped.stdout).toBe('s1\ns2\ns3\ns4\n')
    expect(topped.stderr).toMatch(
      /^mppkit pay: top up lightning session [0-9a-f]{64} .*: deposit 600 sat → 1200 sat/m,
    )
    expect(asked).toHaveLength(2)
    expect((await payments()).length).toBe(paid + 3)
    expect(topped.stderr).toMatch(/^close receipt: \{[^}]*"refundSats": 0/m)
    await expectNoSecrets(topped)
  })

  it.skipIf(!built)(
    'through the mppkit bin: pay picks Lightning from the 402 with --session-file, and close --session-file closes with it',
    async () => {
      const dir = tempDir()
      const file = join(dir, 'sessions.json')
      const mppkit = (args: string[]) =>
        promisify(execFile)('node', [bin, ...args], {
          env: { ...process.env, MPPKIT_SESSION_FILE: '', MPPKIT_CHANNEL_FILE: '' },
        }).catch((error: { code: number; stdout: string; stderr: string }) => error)
      try {
        const paid = (await payments()).length
        // The value of --session-file is not probed as the URL (it comes first).
        const kept = await mppkit([
          'pay',
          '--session-file',
          file,
          `${base}/session`,
          ...node(),
          '--keep-open',
        ])
        expect(kept.stdout, kept.stderr).toBe('session body')
        expect(kept.stderr).toContain('lightning/session: deposit 2,000 sat')
        const [saved] = savedIn(file)
        expect(kept.stderr).toContain(`lightning session ${saved!.sessionId} stays open`)
        const closed = await mppkit(['close', '--session-file', file, '--network', 'regtest'])
        expect(closed.stdout, closed.stderr).toMatch(
          new RegExp(`^closed lightning session ${saved!.sessionId} \\(${base}\\): \\{.*"refundSats":1900`),
        )
        expect(savedIn(file)).toEqual([])
        expect((await payments()).length).toBe(paid + 1)
        const help = await mppkit(['close', '--session-file', file, '--help'])
        expect(help.stdout).toMatch(/^mppkit close --session-file <path> \[<url>\] \[options\]\n/)
        expect((await mppkit(['--help'])).stdout).toContain('mppkit close --session-file <path> [<url>]')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )

  it('exits 2 on usage errors, echoing no secret', async () => {
    const first = async (command: typeof pay, args: string[]) => {
      const result = await run(command, args)
      return { code: result.code, line: result.stderr.split('\n')[0] }
    }
    expect(await first(pay, [`${base}/session`, ...node(), '--session-file'])).toEqual({
      code: 2,
      line: 'mppkit pay: --session-file needs a value',
    })
    expect(await first(pay, [`${base}/session`, ...node(), '--session-file='])).toEqual({
      code: 2,
      line: 'mppkit pay: --session-file takes a path',
    })
    expect(await first(pay, [`${base}/session`, ...node(), '--max-deposit', '2k'])).toEqual({
      code: 2,
      line: 'mppkit pay: --max-deposit takes a whole number of base units (e.g. 1000000), got "2k"',
    })
    expect(await first(pay, [`${base}/session`, ...node(), '--keep-opne'])).toEqual({
      code: 2,
      line: 'mppkit pay: unknown option --keep-opne (did you mean --keep-open?)',
    })
    expect(await first(close, [])).toEqual({
      code: 2,
      line: 'mppkit close: missing --session-file or MPPKIT_SESSION_FILE',
    })
    expect(await first(close, ['--session-file', 'x.json', '--network', 'testnet'])).toEqual({
      code: 2,
      line: 'mppkit close: --network must be mainnet, regtest or signet',
    })
    expect(await first(close, ['--session-file', 'x.json', '--channel-file', 'y.json'])).toMatchObject({
      code: 2,
      line: expect.stringMatching(/^mppkit close: unknown option --channel-file/),
    })
    const secret = network.info.nodes.payer.macaroon
    const extra = await run(close, ['--session-file', 'x.json', secret, secret])
    expect(extra.code).toBe(2)
    expect(extra.stderr.split('\n')[0]).toBe('mppkit close: give at most one <url> (2 given; not shown)')
    expect(extra.stderr).not.toContain(secret.slice(0, 16))
    const help = await run(close, ['--help'])
    expect(help).toMatchObject({ code: 0, stderr: '' })
    expect(help.stdout).toMatch(/^mppkit close --session-file <path> \[<url>\] \[options\]\n/)
    // Nothing was created by a usage error.
    expect(existsSync('x.json')).toBe(false)
  })
})
