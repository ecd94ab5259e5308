import { describe, expect, it } from 'vitest'
import { create as createClient } from '../client/Client.js'
import { PolicyError, VerificationFailedError } from '../Errors.js'
import * as Receipt from '../Receipt.js'
import { create as createServer } from '../server/Server.js'
import { createTestRail } from '../testing/index.js'
import { UsageError } from './args.js'
import { guard } from './guard.js'
import type { Io } from './io.js'
import { commandUrl, type Defaults, depositOptions, parseCommand, printResponse, runCommand } from './rail.js'

const key = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'
const stripeKey = 'sk_live_51Habcdefghijklmnopqrstuvwxyz0123456789'
const defaults = { cap: () => 100n, confirmAbove: () => 10n }

function capture() {
  const out = { stdout: '', stderr: '' }
  const io: Io = { stdout: (t) => (out.stdout += t), stderr: (t) => (out.stderr += t) }
  return { out, io }
}

describe('commandUrl', () => {
  it('never echoes an extra argument (a key given without its flag), only how many and how long', () => {
    const error = (argv: string[]) => {
      try {
        parseCommand(argv, {}, defaults)
      } catch (error) {
        return (error as Error).message
      }
      return undefined
    }
    expect(error(['https://api.example/paid', '--yes', key])).toMatchInlineSnapshot(
      `"one <url> only, got 1 more argument (66 characters; not shown, in case it is a secret)"`,
    )
    expect(error(['https://api.example/paid', stripeKey, 'x'])).toMatchInlineSnapshot(
      `"one <url> only, got 2 more arguments (47, 1 characters; not shown, in case they are secrets)"`,
    )
    for (const argv of [[key], [stripeKey], ['https://api.example/paid', key, stripeKey]]) {
      const message = error(argv)!
      expect(message).not.toContain(key.slice(0, 10))
      expect(message).not.toContain('sk_live')
    }
  })

  it('names the scheme of a URL that is not http(s), and shows nothing of anything else', () => {
    expect(commandUrl(['http://127.0.0.1:3000/paid'])).toBe('http://127.0.0.1:3000/paid')
    expect(() => commandUrl(['ftp://files.example/x'])).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: <url> must be an http(s) URL, not a ftp:// URL]`,
    )
    expect(() => commandUrl([stripeKey])).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: <url> must be an http(s) URL; the 47 characters given are not one (not shown, in case they are a secret)]`,
    )
    expect(() => commandUrl([])).toThrowErrorMatchingInlineSnapshot(`[UsageError: missing <url>]`)
    for (const url of ['https://agent:hunter2@api.example/paid', 'http://hunter2@127.0.0.1:3000/']) {
      expect(() => commandUrl([url])).toThrowError(/credentials/)
      expect(() => commandUrl([url])).not.toThrowError(/hunter2/)
    }
  })
})

describe('printResponse and runCommand', () => {
  it("print the server's words without control characters (they could rewrite the terminal's line)", async () => {
    const { out, io } = capture()
    const response = new Response('nope', { status: 503, statusText: 'Busy \u009b2K' })
    expect(await printResponse(response, io)).toBe(1)
    expect(out.stderr).toBe('mppkit pay: HTTP 503 Busy ?2K\n')
    const failed = capture()
    const code = await runCommand(failed.io, 'usage', async () => {
      throw new PolicyError('rpc', 'the node answered "\r\u001b[2Kmppkit pay: paid"')
    })
    expect(code).toBe(1)
    expect(failed.out.stderr).toBe('mppkit pay: the node answered "??[2Kmppkit pay: paid"\n')
  })

  it("print a server's receipt as JSON whose C1 controls and direction overrides are escaped", async () => {
    const { out, io } = capture()
    const receipt = {
      status: 'success' as const,
      method: 'test',
      timestamp: '2026-12-06T00:00:00Z',
      reference: 'ref\u202e1.00 USD\u009b2K\u0085\u2028next\u0007',
    }
    const response = new Response('ok', { headers: { 'payment-receipt': Receipt.format(receipt) } })
    expect(await printResponse(response, io)).toBe(0)
    expect(out.stdout).toBe('ok')
    expect(out.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u202e]/)
    // Still the same JSON: parsed back, it is the receipt the server sent.
    const printed = out.stderr.replace(/^receipt: /, '')
    expect(JSON.parse(printed)).toEqual(receipt)
    expect(printed).toContain('ref\\u202e1.00 USD\\u009b2K\\u0085\\u2028next\\u0007')
  })

  it('never print a payment the server has not finished (402 + Retry-After) as unpaid: it may have gone through', async () => {
    // The rail took the payment and has not finished it (a Stripe PaymentIntent `processing`).
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.example',
      secrets: ['rail-test-secret-0123456789abcdefghij'],
      methods: [
        rail.server({
          failWith: () =>
            new VerificationFailedError({
              detail: 'The PaymentIntent is processing; retry the same credential later.',
              reason: 'payment-intent-processing',
              retryAfter: 0,
            }),
        }),
      ],
      logger: false,
    })
    const handler = server.protect(
      { offers: [{ method: 'test', request: { amount: '5', currency: 'usd', recipient: 'acct_1' } }] },
      () => new Response('ok'),
    )
    const client = createClient({
      fetch: async (input, init) => handler(new Request(input, init)),
      methods: [rail.client()],
    })
    const { out, io } = capture()
    const code = await runCommand(io, 'usage', async () =>
      printResponse(await client.fetch('https://api.example/paid'), io),
    )
    expect(code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: the server has not finished the payment (HTTP 402 payment-intent-processing with Retry-After) and the client stopped resending its credential (after 2 resend(s)); the payment may have gone through: check before paying again
      "
    `)
  })
})

describe('--currency and caps in base units', () => {
  const url = 'https://api.example/paid'
  // A rail whose currencies differ in base units (Solana mints, Stripe's minor units), without defaults.
  const mixed: Defaults = { cap: () => undefined, confirmAbove: () => undefined, uniformUnits: false }
  const usage = (argv: string[], defaults: Defaults) => {
    try {
      parseCommand(argv, depositOptions, defaults)
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError)
      return (error as Error).message
    }
    return undefined
  }

  it('refuses --max-amount or --max-deposit without --currency where base units differ between currencies', () => {
    expect(usage([url, '--max-amount', '250000', '--yes'], mixed)).toBe(
      "--max-amount counts base units, whose size differs between this rail's currencies: name the currency it is in with --currency <id>",
    )
    expect(usage([url, '--max-deposit', '250000'], { ...mixed, depositCap: () => undefined })).toMatch(
      /^--max-deposit counts base units.*--currency <id>$/,
    )
    expect(usage([url, '--currency', 'cheap', '--max-amount', '250000'], mixed)).toBeUndefined()
    // Where every currency has the same base unit (TIP-20s, sat), a bare cap stays accepted.
    expect(usage([url, '--max-amount', '250000'], defaults)).toBeUndefined()
  })

  it('reads --currency as the rail spells currencies, and never echoes a value that names none', () => {
    const spelt: Defaults = {
      ...mixed,
      currencyId: (given) => {
        if (!/^[a-z]{3}$/i.test(given)) throw new UsageError('not a code')
        return given.toLowerCase()
      },
    }
    expect(parseCommand([url, '--currency', 'USD'], {}, spelt)!.limits.currency).toBe('usd')
    expect(usage([url, '--currency', stripeKey], spelt)).toBe('not a code')
    const message = usage([url, `--currency=${key}\n`], mixed)!
    expect(message).toMatch(/^--currency takes a currency id/)
    expect(message).not.toContain(key.slice(2, 12))
  })

  // The audit's case: a cap meant for a 6-decimal mint (250000 = 0.25) once paid 250,000 whole tokens of a
  // 0-decimal mint the server offered instead.
  it('pays only offers in --currency, with --max-amount in its base units, and refuses every other currency', async () => {
    for (const offered of [['dear'], ['dear', 'cheap']]) {
      const rail = createTestRail()
      const server = createServer({
        realm: 'api.example',
        secrets: ['rail-test-secret-0123456789abcdefghij'],
        methods: [rail.server()],
      })
      const handler = server.protect(
        {
          offers: offered.map((currency) => ({
            method: 'test',
            request: { amount: '250000', currency, recipient: 'acct_1' },
          })),
        },
        () => new Response('ok'),
      )
      const command = parseCommand(
        [url, '--currency', 'cheap', '--max-amount', '250000', '--yes'],
        {},
        mixed,
      )!
      const announced: string[] = []
      const client = createClient({
        fetch: async (input, init) => handler(new Request(input, init)),
        methods: [guard(rail.client(), command.limits, { announce: (line) => announced.push(line) })],
      })
      const paid = client.fetch(url)
      if (offered.length === 1) {
        await expect(paid).rejects.toMatchObject({
          name: 'PolicyError',
          reason: 'currency',
          message: 'refusing to pay 250000 base units of dear: only cheap is paid (--currency)',
        })
        expect(rail.transfers.size).toBe(0)
      } else {
        expect((await paid).status).toBe(200)
        expect([...rail.transfers.values()].map((t) => t.currency)).toEqual(['cheap'])
        expect(announced).toEqual([
          'test/charge: pay 250000 base units of cheap to acct_1 (realm api.example)',
        ])
      }
    }
  })

  it('suggests --currency with the cap flag its refusals name, where base units differ between currencies', () => {
    const quote = { amount: 250000n, currency: 'dear' }
    const refusal = (argv: string[], defaults: Defaults) => {
      const method = guard(createTestRail().client(), parseCommand(argv, {}, defaults)!.limits, {
        announce: () => {},
      })
      try {
        method.quote!({
          amount: String(quote.amount),
          currency: quote.currency,
          recipient: 'acct_1',
        } as never)
      } catch (error) {
        return (error as Error).message
      }
      return undefined
    }
    expect(refusal([url], mixed)).toBe(
      'refusing to pay 250000 base units of dear: no default cap for this currency; give one with --currency dear --max-amount <base units>',
    )
    expect(refusal([url, '--currency', 'dear', '--max-amount', '1000'], mixed)).toBe(
      'refusing to pay 250000 base units of dear: above the cap of 1000 base units; raise it with --currency dear --max-amount <base units>',
    )
    // One base unit for every currency: the cap flag alone.
    expect(refusal([url], defaults)).toBe(
      'refusing to pay 250000 base units of dear: above the cap of 100 base units; raise it with --max-amount <base units>',
    )
  })
})
