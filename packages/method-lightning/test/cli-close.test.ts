import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Credential, MemoryStore } from '@mppkit/core'
import type { Io } from '@mppkit/core/cli'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { getInvoices } from 'lightning'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { close, pay } from '../src/cli.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// `mppkit close --session-file` of @mppkit/method-lightning/cli with servers that stop answering: the
// sessions of different servers closed at once (a hung server holds up only its own), `--abandon` giving
// up a paid open whose server is gone, and the lost payments the file keeps listed. On the LND simulator,
// with real session servers on loopback HTTP, each behind a TCP proxy that can hang.

// The `mppkit` bin runs the built packages (core's, which imports this one's dist).
const bin = fileURLToPath(new URL('../../core/bin/mppkit.js', import.meta.url))
const built = ['../../core/dist/bin/mppkit.js', '../dist/cli.js'].every((path) =>
  existsSync(fileURLToPath(new URL(path, import.meta.url))),
)

let network: Lightning
beforeAll(async () => {
  network = await startLightning()
})
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  await network?.stop()
})

const actionOf = (request: Request) => {
  const [token] = Credential.extract(request.headers.get('authorization'))
  return token ? (Credential.decode(token).payload as { action?: string }).action : undefined
}

/**
 * A session server (50 sat a request on a deposit of 500) on loopback HTTP behind a TCP proxy (the
 * origin the CLI pays and saves): `hang()` accepts every new connection and never answers it, and passes
 * nothing more on the connections already open (a client's keep-alive ones), as a hung server does;
 * `forward()` passes connections on again. While `refuseOpens`, its open credentials are answered 503
 * before the server sees them (the deposit paid, the open never taken).
 */
async function hungServer(realm: string) {
  const core = createServer({
    realm,
    secrets: [`lightning-cli-close-${realm}-0123456789abcdef`],
    methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 500 })],
    store: new MemoryStore(),
  })
  const protect = core.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '50' } }] },
    async () => new Response('session body'),
  )
  const control = { refuseOpens: false }
  const http: HttpServer = createHttpServer(
    toNodeListener(async (request) =>
      control.refuseOpens && actionOf(request) === 'open'
        ? new Response('opening is down', { status: 503 })
        : protect(request),
    ),
  )
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const httpPort = (http.address() as AddressInfo).port
  let hanging = false
  const sockets = new Set<Socket>()
  const live = new Set<Socket>()
  const dead = new Set<Socket>()
  const proxy = createTcpServer((client) => {
    sockets.add(client)
    client.on('error', () => client.destroy()).on('close', () => sockets.delete(client))
    if (hanging) {
      // Accepted, never answered.
      dead.add(client)
      return
    }
    const upstream = connect(httpPort, '127.0.0.1')
    sockets.add(upstream)
    live.add(client)
    client.on('close', () => {
      live.delete(client)
      upstream.destroy()
    })
    const closed = () => {
      sockets.delete(upstream)
      if (live.has(client)) client.destroy()
    }
    upstream.on('error', closed).on('close', closed)
    client.on('data', (chunk) => live.has(client) && upstream.write(chunk))
    upstream.on('data', (chunk) => live.has(client) && client.write(chunk))
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => proxy.close(() => resolve()))
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
    await core.close()
  })
  return {
    origin: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    control,
    hang() {
      hanging = true
      for (const socket of live) dead.add(socket)
      live.clear()
    },
    /** Answers again: the dead connections reset (as a restarted server's), given time to be seen closed. */
    async forward() {
      hanging = false
      for (const socket of dead) socket.destroy()
      dead.clear()
      await new Promise((resolve) => setTimeout(resolve, 100))
    },
  }
}

const node = () => {
  const { socket, cert, macaroon } = network.info.nodes.payer
  return ['--lnd-socket', socket, '--lnd-cert', cert, '--lnd-macaroon', macaroon, '--network', 'regtest']
}
/** Runs a command in this process; `log` has both streams in the order written. */
async function run(command: typeof pay, args: string[]) {
  const out = { stdout: '', stderr: '', log: '' }
  const io: Io = {
    stdout: (text) => {
      out.stdout += text
      out.log += text
    },
    stderr: (text) => {
      out.stderr += text
      out.log += text
    },
  }
  const saved = { ...process.env }
  delete process.env.MPPKIT_SESSION_FILE
  delete process.env.MPPKIT_LIGHTNING_NETWORK
  try {
    return { code: await command(args, io), ...out }
  } finally {
    process.env = saved
  }
}
const closeArgs = (file: string, ...more: string[]) => [
  '--session-file',
  file,
  '--network',
  'regtest',
  ...more,
]
/** The payee's settled invoices (each deposit paid is one), with their preimages. */
const payments = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (invoice) => invoice.is_confirmed,
  )
/** Satoshis the payer's node received on its invoices (the refunds to the return invoices). */
const refunded = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payer), limit: 1000 })).invoices.reduce(
    (sum, invoice) => sum + Number(invoice.received),
    0,
  )
type Record_ = { sessionId: string; preimage: string; opened?: boolean }
const recordsIn = (file: string) =>
  (JSON.parse(readFileSync(file, 'utf8')) as { sessions: Record<string, Record_> }).sessions
/** Never a preimage of the payee's invoices (deposits), nor the payer's macaroon, in what was printed. */
async function expectNoSecrets(output: { stdout: string; stderr: string }) {
  const printed = `${output.stdout}${output.stderr}`
  expect(printed).not.toContain(network.info.nodes.payer.macaroon)
  for (const { secret } of await payments()) expect(printed).not.toContain(secret)
}
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-close-'))
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
  return dir
}
/** Opens a session with `origin` kept in `file` (deposit 500, one request of 50 paid); its id. */
async function keepOpen(origin: string, file: string): Promise<string> {
  const kept = await run(pay, [`${origin}/`, ...node(), '--keep-open', '--session-file', file])
  expect(kept.code, kept.stderr).toBe(0)
  return recordsIn(file)[origin]!.sessionId
}
const lostOpenLine = (id: string, origin: string, file: string) =>
  `mppkit close: lost open of lightning session ${id} (${origin}): its deposit of 500 sat paid, its open ` +
  `never taken by its server; ${file} keeps its proof of payment (the deposit's preimage, not shown: a ` +
  `secret) under "lost:${id}"\n` +
  "mppkit close: show these proofs to the server's operator; the file keeps them until you delete them\n"

describe('mppkit close (lightning): servers that stop answering', () => {
  it('without a <url>, closes the servers at once: a hung one holds up neither the close nor the refund of another, stays saved (exit 1), each told in the order of the file; a later run closes it', async () => {
    const hung = await hungServer('hung.test')
    const healthy = await hungServer('healthy.test')
    const file = join(tempDir(), 'sessions.json')
    // The hung server's session first in the file: one close after the other would wait for its time
    // limit before the healthy server's close is sent.
    const hungId = await keepOpen(hung.origin, file)
    const healthyId = await keepOpen(healthy.origin, file)
    expect(Object.keys(recordsIn(file))).toEqual([hung.origin, healthy.origin])
    const [paid, refunds] = [(await payments()).length, await refunded()]

    hung.hang()
    const started = Date.now()
    const closing = run(close, closeArgs(file, '--side-timeout', '1500'))
    // The restore's check of the hung server ends at its time limit (1.5 s); the healthy server's close
    // follows at once, long before the hung server's close times out (1.5 s more).
    while (healthy.origin in recordsIn(file)) {
      expect(Date.now() - started, "the healthy server's close").toBeLessThan(2_700)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await expect.poll(refunded, { timeout: 1_000 }).toBe(refunds + 450)
    expect(Date.now() - started).toBeLessThan(2_700)

    const result = await closing
    // The hung server's close ended at its time limit: its outcome unknown, the session kept.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000)
    expect(result.code).toBe(1)
    // Each session's outcome in the order of the file (the hung server's first), as one at a time told it.
    expect(result.log).toMatch(
      new RegExp(
        `^mppkit close: closing lightning session ${hungId} \\(${hung.origin}\\) failed: lightning session: ` +
          `${hung.origin} did not answer the close of session ${hungId} within 1500 ms \\(sideTimeoutMs\\): ` +
          'its outcome is unknown; the session is kept, and the next close finishes it; it stays saved ' +
          '\\(deposit 500 sat\\): run this again later \\(its server also closes it after its idle timeout, ' +
          'refunding the return invoice\\)\n' +
          `closed lightning session ${healthyId} \\(${healthy.origin}\\): \\{[^\n]*"refundSats":450[^\n]*\\}\n$`,
      ),
    )
    expect(Object.keys(recordsIn(file))).toEqual([hung.origin])
    await expectNoSecrets(result)

    // It answers again: the next run closes it (refunded), and the file is empty.
    await hung.forward()
    const again = await run(close, closeArgs(file, '--side-timeout', '1500'))
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toBe('')
    expect(again.stdout).toMatch(
      new RegExp(`^closed lightning session ${hungId} \\(${hung.origin}\\): \\{[^\n]*"refundSats":450`),
    )
    expect(await refunded()).toBe(refunds + 900)
    expect(recordsIn(file)).toEqual({})
    // Nothing was paid by the closes.
    expect((await payments()).length).toBe(paid)
  })

  it('--abandon <sessionId> gives up a paid open whose server is gone (exit 0): its record moves to lost:<sessionId> with its proof, nothing else closed; then mppkit close lists it', async () => {
    const gone = await hungServer('gone.test')
    const healthy = await hungServer('healthy.test')
    const file = join(tempDir(), 'sessions.json')
    const healthyId = await keepOpen(healthy.origin, file)
    // The deposit is paid; its open never reaches the server (503).
    gone.control.refuseOpens = true
    const unopened = await run(pay, [`${gone.origin}/`, ...node(), '--keep-open', '--session-file', file])
    expect(unopened.code).toBe(1)
    const goneId = recordsIn(file)[gone.origin]!.sessionId
    expect(recordsIn(file)[gone.origin]).toMatchObject({ opened: false })
    const paid = (await payments()).length
    const deposit = (await payments()).find((invoice) => invoice.id === goneId)!
    const before = readFileSync(file, 'utf8')

    // A close names it pending, with the way out.
    const pending = await run(close, closeArgs(file, gone.origin))
    expect(pending.code).toBe(1)
    expect(pending.stderr).toBe(
      `mppkit close: lightning session ${goneId} (${gone.origin}) cannot be closed yet: its deposit of 500 sat ` +
        'is paid but its open has not reached its server (the server answered 503); it stays saved: run this ' +
        `again later, or, if its server is gone for good, \`mppkit close --session-file ${file} --abandon ${goneId}\` ` +
        'gives it up (its proof of payment kept in the file)\n',
    )

    // An id of no pending session is not given up, nor echoed: exit 1, the file as it was.
    const unknown = randomBytes(32).toString('hex')
    const none = await run(close, closeArgs(file, '--abandon', unknown))
    expect(none).toMatchObject({ code: 1, stdout: '' })
    expect(none.stderr).toBe(
      `mppkit close: no pending lightning session on regtest in ${file} has the id --abandon gives (not shown); ` +
        `nothing was changed; pending: ${goneId}\n`,
    )
    expect(readFileSync(file, 'utf8')).toBe(before)
    // An open session is not pending: exit 1, nothing given up (close it instead).
    const open = await run(close, closeArgs(file, '--abandon', healthyId.toUpperCase()))
    expect(open).toMatchObject({ code: 1, stdout: '' })
    expect(open.stderr).toBe(
      `mppkit close: lightning session ${healthyId} (${healthy.origin}) is open, not pending: nothing was given ` +
        `up; \`mppkit close --session-file ${file} ${healthy.origin}\` closes it (refund to the return invoice)\n`,
    )
    expect(readFileSync(file, 'utf8')).toBe(before)

    // Its server is gone for good (it accepts and never answers): its open is sent once more, then given up.
    gone.hang()
    const refunds = await refunded()
    const abandoned = await run(close, closeArgs(file, '--abandon', goneId, '--side-timeout', '500'))
    expect(abandoned.code, abandoned.stderr).toBe(0)
    expect(abandoned.stderr).toBe('')
    expect(abandoned.stdout).toBe(
      `gave up lightning session ${goneId} (${gone.origin}): its deposit of 500 sat is paid but its open never ` +
        'reached its server (the server did not answer within 500 ms); its open is no longer sent and nothing is ' +
        `refunded. ${file} keeps its proof of payment (the deposit's preimage, not shown: a secret) under ` +
        `"lost:${goneId}": show it to the server's operator\n`,
    )
    await expectNoSecrets(abandoned)
    // Moved, with the deposit's preimage (the payee's invoice's secret); the other session untouched.
    const records = recordsIn(file)
    expect(Object.keys(records)).toEqual([healthy.origin, `lost:${goneId}`])
    expect(records[`lost:${goneId}`]).toMatchObject({ sessionId: goneId, opened: false })
    expect(records[`lost:${goneId}`]!.preimage).toBe(deposit.secret)
    expect(records[healthy.origin]!.sessionId).toBe(healthyId)
    // Given up already: exit 1, nothing changed.
    const twice = await run(close, closeArgs(file, '--abandon', goneId))
    expect(twice).toMatchObject({ code: 1, stdout: '' })
    expect(twice.stderr).toBe(
      `mppkit close: lightning session ${goneId} (${gone.origin}) is lost or given up already: ${file} keeps ` +
        `its proof of payment under "lost:${goneId}"; nothing was changed\n`,
    )

    // mppkit close closes the other session (its open no longer in the way) and lists the lost one once.
    const closed = await run(close, closeArgs(file))
    expect(closed.code, closed.stderr).toBe(0)
    expect(closed.stdout).toMatch(
      new RegExp(
        `^closed lightning session ${healthyId} \\(${healthy.origin}\\): \\{[^\n]*"refundSats":450[^\n]*\\}\n$`,
      ),
    )
    expect(closed.stderr).toBe(lostOpenLine(goneId, gone.origin, file))
    await expectNoSecrets(closed)
    expect(await refunded()).toBe(refunds + 450)
    // Listed on every run while the file keeps it (a <url> of another server's: not its).
    const empty = await run(close, closeArgs(file))
    expect(empty).toMatchObject({ code: 0, stdout: `no lightning session on regtest is saved in ${file}\n` })
    expect(empty.stderr).toBe(lostOpenLine(goneId, gone.origin, file))
    const other = await run(close, closeArgs(file, healthy.origin))
    expect(other).toMatchObject({
      code: 0,
      stdout: `no lightning session on regtest is saved in ${file} for ${healthy.origin}\n`,
      stderr: '',
    })
    // Nothing paid by any of it.
    expect((await payments()).length).toBe(paid)
  })

  it('exits 2 on usage errors of --abandon and --side-timeout, echoing no value', async () => {
    const file = join(tempDir(), 'sessions.json')
    const secret = randomBytes(32).toString('hex')
    const first = async (args: string[]) => {
      const result = await run(close, args)
      expect(`${result.stdout}${result.stderr}`).not.toContain(secret.slice(0, 16))
      return { code: result.code, line: result.stderr.split('\n')[0] }
    }
    expect(await first(closeArgs(file, '--abandn', secret))).toEqual({
      code: 2,
      line: 'mppkit close: unknown option --abandn (did you mean --abandon?)',
    })
    expect(await first(closeArgs(file, '--abandon'))).toEqual({
      code: 2,
      line: 'mppkit close: --abandon needs a value',
    })
    expect(await first(closeArgs(file, '--abandon', `${secret}00`))).toEqual({
      code: 2,
      line: 'mppkit close: --abandon takes a session id: the 64 hex digits mppkit names a session by (not shown)',
    })
    expect(await first(closeArgs(file, '--abandon', secret, 'http://127.0.0.1:1/'))).toEqual({
      code: 2,
      line: 'mppkit close: --abandon <sessionId> names its session: give no <url> with it',
    })
    for (const value of ['0', '1.5', '-1', secret])
      expect(await first(closeArgs(file, '--side-timeout', value)), value).toEqual({
        code: 2,
        line: 'mppkit close: --side-timeout takes a whole number of milliseconds (at least 1)',
      })
    expect(await first(closeArgs(file, '--side-timeout', '2147483648'))).toEqual({
      code: 2,
      line: 'mppkit close: --side-timeout takes at most 2147483647 milliseconds (about 24.8 days)',
    })
    // Nothing was created by a usage error.
    expect(existsSync(file)).toBe(false)
  })

  it.skipIf(!built)(
    'through the mppkit bin: --abandon gives up the pending open (exit 0), an unknown flag exits 2, and close lists the lost record',
    async () => {
      const gone = await hungServer('gone.test')
      const file = join(tempDir(), 'sessions.json')
      gone.control.refuseOpens = true
      const unopened = await run(pay, [`${gone.origin}/`, ...node(), '--keep-open', '--session-file', file])
      expect(unopened.code).toBe(1)
      const goneId = recordsIn(file)[gone.origin]!.sessionId
      const mppkit = (args: string[]) =>
        promisify(execFile)('node', [bin, 'close', ...args], {
          env: { ...process.env, MPPKIT_SESSION_FILE: '', MPPKIT_CHANNEL_FILE: '' },
        }).then(
          (output) => ({ code: 0, ...output }),
          (error: { code: number; stdout: string; stderr: string }) => error,
        )
      const typo = await mppkit(closeArgs(file, '--abandn', goneId))
      expect(typo.code).toBe(2)
      expect(typo.stderr.split('\n')[0]).toBe(
        'mppkit close: unknown option --abandn (did you mean --abandon?)',
      )
      expect(recordsIn(file)[gone.origin]!.sessionId).toBe(goneId)
      const help = await mppkit(['--session-file', file, '--help'])
      expect(help.stdout).toContain('--abandon <sessionId>  give up that pending session')
      expect(help.stdout).toContain('--side-timeout <ms>')

      gone.hang()
      const abandoned = await mppkit(closeArgs(file, '--abandon', goneId, '--side-timeout', '500'))
      expect(abandoned.code, abandoned.stderr).toBe(0)
      expect(abandoned.stdout).toMatch(
        new RegExp(`^gave up lightning session ${goneId} \\(${gone.origin}\\): `),
      )
      expect(Object.keys(recordsIn(file))).toEqual([`lost:${goneId}`])
      const listed = await mppkit(closeArgs(file))
      expect(listed).toMatchObject({
        code: 0,
        stdout: `no lightning session on regtest is saved in ${file}\n`,
        stderr: lostOpenLine(goneId, gone.origin, file),
      })
      await expectNoSecrets(abandoned)
    },
  )
})
