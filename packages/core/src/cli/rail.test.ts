import { describe, expect, it } from 'vitest'
import { PolicyError } from '../Errors.js'
import type { Io } from './io.js'
import { commandUrl, parseCommand, printResponse, runCommand } from './rail.js'

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
})
