import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { MemoryStore } from '@mppkit/core'
import type { Io } from '@mppkit/core/cli'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { getInvoices } from 'lightning'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { close, pay } from '../src/cli.js'
import type { SavedSession } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// `mppkit close --session-file` and `mppkit pay --session-file` of @mppkit/method-lightning/cli with a
// session file that holds records the session client cannot use beside a valid session: each is named
// by its key and what is wrong (never a preimage), left in the file byte for byte, and the valid session
// is closed and refunded all the same (exit 1); `mppkit pay` names them and pays other servers, never
// the server of a skipped record. On the LND simulator, with real session servers on loopback HTTP.

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

/** A session server (50 sat a request on a deposit of 500) on loopback HTTP: its origin. */
async function sessionOrigin(realm: string) {
  const core = createServer({
    realm,
    secrets: [`lightning-cli-skipped-${realm}-0123456789abcdef`],
    methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 500 })],
    store: new MemoryStore(),
  })
  const protect = core.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '50' } }] },
    async () => new Response('session body'),
  )
  const http: HttpServer = createHttpServer(toNodeListener(protect))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => {
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
    await core.close()
  })
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

const node = () => {
  const { socket, cert, macaroon } = network.info.nodes.payer
  return ['--lnd-socket', socket, '--lnd-cert', cert, '--lnd-macaroon', macaroon, '--network', 'regtest']
}
/** Runs a command in this process. */
async function run(command: typeof pay, args: string[]) {
  const out = { stdout: '', stderr: '' }
  const io: Io = { stdout: (text) => (out.stdout += text), stderr: (text) => (out.stderr += text) }
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
const recordsIn = (file: string) =>
  (JSON.parse(readFileSync(file, 'utf8')) as { sessions: Record<string, unknown> }).sessions
/** The file as `fileSessionStore` writes these records. */
const written = (sessions: Record<string, unknown>) => `${JSON.stringify({ v: 1, sessions }, null, 2)}\n`
const hash = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-skipped-'))
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
  return dir
}
/** Never a deposit's preimage (the payee's invoices'), one of `more`, nor the payer's macaroon printed. */
async function expectNoSecrets(output: { stdout: string; stderr: string }, more: string[]) {
  const printed = `${output.stdout}${output.stderr}`
  expect(printed).not.toContain(network.info.nodes.payer.macaroon)
  for (const { secret } of await payments()) expect(printed).not.toContain(secret)
  for (const secret of more) expect(printed).not.toContain(secret)
}

/** Opens a session with `origin` kept in `file` (deposit 500, one request of 50 paid); its record. */
async function keepOpen(origin: string, file: string): Promise<SavedSession> {
  const kept = await run(pay, [`${origin}/`, ...node(), '--keep-open', '--session-file', file])
  expect(kept.code, kept.stderr).toBe(0)
  return recordsIn(file)[origin] as SavedSession
}

/**
 * Records beside `valid` in `file` that the client cannot use, as a crash, a hand edit or another
 * network's run could leave them, each holding a preimage (`secrets`): broken JSON text under the key of
 * server `other`, a record of the wrong shape, a session of mainnet and a lost top-up that does not parse.
 */
function badRecords(valid: SavedSession, other: string) {
  const secrets = Array.from({ length: 4 }, () => randomBytes(32).toString('hex'))
  const [broken, edited, mainnet, topUp] = secrets as [string, string, string, string]
  const bad: Record<string, unknown> = {
    [other]: `{"v":1,"network":"regtest","sessionId":"${hash(broken)}","preimage":"${broken}`,
    'https://hand-edited.test': {
      ...valid,
      sessionId: hash(edited),
      preimage: edited,
      url: 'https://hand-edited.test/r',
      deposit: -5,
      spent: 'none',
    },
    'https://mainnet.test': {
      ...valid,
      network: 'mainnet',
      sessionId: hash(mainnet),
      preimage: mainnet,
      url: 'https://mainnet.test/r',
    },
    [`lost:${valid.sessionId}:topup:${hash(topUp)}`]: `{"v":1,"kind":"topUp","preimage":"${topUp}`,
  }
  return { bad, secrets }
}
/** The lines naming each of {@link badRecords}' records (after `mppkit close: ` or `mppkit pay: `). */
const skippedLines = (file: string, bad: Record<string, unknown>) => {
  const [other, , , topUpKey] = Object.keys(bad) as [string, string, string, string]
  return [
    `saved session "${other}" in ${file} is not a valid record (record): skipped, left in the file as it is (fix or remove it)`,
    `saved session "https://hand-edited.test" in ${file} is not a valid record (deposit, spent): skipped, left in the file as it is (fix or remove it)`,
    `saved session "https://mainnet.test" in ${file} is a session of network mainnet, not of regtest, which this client pays on: skipped, left in the file as it is; \`mppkit close --session-file ${file} --network mainnet\` closes it`,
    `saved record "${topUpKey}" in ${file} is not a valid lost top-up (record): skipped, left in the file as it is (fix or remove it)`,
  ]
}

describe('mppkit close / pay (lightning): session file records the client cannot use', () => {
  it('closes the valid session (refunded), names each bad record without a secret (exit 1), leaves them in the file byte for byte; pay names them, pays another server, not theirs', async () => {
    const base = await sessionOrigin('kept.test')
    const other = await sessionOrigin('other.test')
    const file = join(tempDir(), 'sessions.json')
    const valid = await keepOpen(base, file)
    const { bad, secrets } = badRecords(valid, other)
    const lines = skippedLines(file, bad)
    writeFileSync(file, written({ [base]: valid, ...bad }), { mode: 0o600 })
    const [paid, refunds] = [(await payments()).length, await refunded()]

    const closed = await run(close, closeArgs(file))
    expect(closed.code).toBe(1)
    expect(closed.stdout).toMatch(
      new RegExp(
        `^closed lightning session ${valid.sessionId} \\(${base}\\): \\{[^\n]*"refundSats":450[^\n]*\\}\n$`,
      ),
    )
    expect(closed.stderr).toBe(lines.map((line) => `mppkit close: ${line}\n`).join(''))
    // Refunded to the return invoice on the payer's node: 500 deposited, 50 spent.
    expect(await refunded()).toBe(refunds + 450)
    // The closed session left the file; the bad records are there as they were, byte for byte.
    expect(readFileSync(file, 'utf8')).toBe(written(bad))
    expect(existsSync(`${file}.lock`)).toBe(false)
    await expectNoSecrets(closed, [...secrets, valid.preimage])

    // Another run names them again (exit 1), closes nothing.
    const again = await run(close, closeArgs(file))
    expect(again).toMatchObject({ code: 1, stdout: '' })
    expect(again.stderr.split('\n').filter(Boolean)).toHaveLength(4)
    // With <url>: the records of other servers are not this run's (one without a server is named).
    const one = await run(close, closeArgs(file, `${other}/`))
    expect(one).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `mppkit close: ${lines[0]}\nmppkit close: ${lines[3]}\n`,
    })

    // mppkit pay names them and pays its server on a new session (a new deposit)...
    const paidAgain = await run(pay, [`${base}/`, ...node(), '--keep-open', '--session-file', file])
    expect(paidAgain.code, paidAgain.stderr).toBe(0)
    expect(paidAgain.stdout).toBe('session body')
    for (const line of lines) expect(paidAgain.stderr).toContain(`mppkit pay: ${line}\n`)
    expect((await payments()).length).toBe(paid + 1)
    // ...but not the server of a skipped record: its new session would be saved over it. Nothing paid.
    const refused = await run(pay, [`${other}/`, ...node(), '--keep-open', '--session-file', file])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(
      `mppkit pay: lightning session: saved session "${other}" is not a valid record (record): a new session for this server would be saved over it; nothing was paid (fix or remove it)\n`,
    )
    expect((await payments()).length).toBe(paid + 1)
    const { [base]: reopened, ...rest } = recordsIn(file)
    expect(reopened).toMatchObject({ network: 'regtest', deposit: '500', spent: '50' })
    expect(rest).toEqual(bad)
    await expectNoSecrets(paidAgain, secrets)
    await expectNoSecrets(refused, secrets)

    // The new session closes; the bad records are still there, byte for byte.
    const last = await run(close, closeArgs(file))
    expect(last.code).toBe(1)
    expect(last.stdout).toMatch(/^closed lightning session [0-9a-f]{64} /)
    expect(readFileSync(file, 'utf8')).toBe(written(bad))
    expect(await refunded()).toBe(refunds + 900)
  })

  it.skipIf(!built)(
    'through the mppkit bin: the valid session closed and refunded, each bad record named, exit 1',
    async () => {
      const base = await sessionOrigin('bin.test')
      const other = await sessionOrigin('bin-other.test')
      const file = join(tempDir(), 'sessions.json')
      const valid = await keepOpen(base, file)
      const { bad, secrets } = badRecords(valid, other)
      writeFileSync(file, written({ [base]: valid, ...bad }), { mode: 0o600 })
      const refunds = await refunded()

      const result = await promisify(execFile)('node', [bin, 'close', ...closeArgs(file)], {
        env: { ...process.env, MPPKIT_SESSION_FILE: '', MPPKIT_CHANNEL_FILE: '' },
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      )
      expect(result.code).toBe(1)
      expect(result.stdout).toMatch(
        new RegExp(`^closed lightning session ${valid.sessionId} \\(${base}\\): \\{[^\n]*"refundSats":450`),
      )
      expect(result.stderr).toBe(
        skippedLines(file, bad)
          .map((line) => `mppkit close: ${line}\n`)
          .join(''),
      )
      expect(await refunded()).toBe(refunds + 450)
      expect(readFileSync(file, 'utf8')).toBe(written(bad))
      await expectNoSecrets(result, [...secrets, valid.preimage])
    },
  )
})
