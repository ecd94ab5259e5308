import { expect, it, describe as suite } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { describe } from './Logger.js'
import { create as createServer } from './Server.js'

const url = 'https://api.test/r'
const offer = { method: 'test', request: { amount: '1', currency: 'usd', recipient: 'a' } }

suite('Logger.describe', () => {
  it('keeps the name and the first line of the message only', () => {
    const error = new TypeError('socket hang up\nAuthorization: Payment eyJzZWNyZXQiOnRydWV9')
    expect(describe(error, 'settle')).toMatchInlineSnapshot(`"mppkit settle: TypeError: socket hang up"`)
    expect(describe('x'.repeat(500), 'store')).toHaveLength('mppkit store: Error: '.length + 161)
  })
})

suite('Options.logger', () => {
  it('writes one line per distinct failure per minute, then counts the repeats', async () => {
    const rail = createTestRail()
    let clock = Date.now()
    const lines: string[] = []
    const server = createServer({
      realm: 'api.test',
      secrets: ['logger-test-secret-0123456789abcdefghijklm'],
      methods: [rail.server({ failWith: () => new TypeError('socket hang up') })],
      now: () => clock,
      logger: (line) => lines.push(line),
    })
    const handler = server.protect({ offers: [offer] }, () => new Response('ok'))
    const attempt = async () => {
      const unpaid = await handler(new Request(url))
      const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
      const { payload } = await rail
        .client()
        .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
      const authorization = Credential.format({ challenge: challenge!, payload })
      expect((await handler(new Request(url, { headers: { authorization } }))).status).toBe(503)
      return authorization
    }
    const authorization = await attempt()
    await attempt()
    await attempt()
    expect(lines).toEqual(['mppkit settle: TypeError: socket hang up'])
    clock += 61_000
    await attempt()
    expect(lines).toEqual([
      'mppkit settle: TypeError: socket hang up',
      'mppkit settle: TypeError: socket hang up (and 2 more like it)',
    ])
    // Never the credential.
    expect(lines.join('\n')).not.toContain(authorization.slice('Payment '.length, 40))
  })

  it('is silent with logger: false', () => {
    const lines: string[] = []
    const original = process.stderr.write
    process.stderr.write = ((chunk: string) => lines.push(chunk) > 0) as typeof process.stderr.write
    try {
      let report: ((error: unknown) => void) | undefined
      createServer({
        realm: 'api.test',
        secrets: ['logger-test-secret-0123456789abcdefghijklm'],
        methods: [{ ...createTestRail().server(), setup: (context) => (report = context.report) }],
        logger: false,
      })
      report!(new Error('flush failed'))
    } finally {
      process.stderr.write = original
    }
    expect(lines).toEqual([])
  })
})
