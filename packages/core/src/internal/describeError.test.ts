import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { PaymentFailedError } from '../client/Client.js'
import { describeError } from './describeError.js'

describe('describeError', () => {
  it('names the system error behind a fetch failure', async () => {
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const { port } = probe.address() as AddressInfo
    await new Promise((resolve) => probe.close(resolve))
    const error = await fetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e)
    expect(describeError(error)).toBe(`ECONNREFUSED 127.0.0.1:${port}`)
    expect(describeError(new Error('could not pay', { cause: error }))).toBe(
      `could not pay (ECONNREFUSED 127.0.0.1:${port})`,
    )
  })

  it('says when a failed payment may have gone through', () => {
    const sent = new PaymentFailedError('solana: the payment transaction was not confirmed in time', {
      mayHaveSettled: true,
    })
    expect(describeError(sent)).toBe(
      'solana: the payment transaction was not confirmed in time; the payment may have gone through: check before paying again',
    )
    expect(describeError(new PaymentFailedError('no route'))).toBe('no route')
    // A message that already says so (the client's outcome-unknown) is not told twice.
    const lost = new PaymentFailedError(
      'the paid request failed after the credential was sent; the payment may have gone through: check before paying again',
      { mayHaveSettled: true },
    )
    expect(describeError(lost)).toBe(lost.message)
  })

  it('keeps the first line of other messages', () => {
    expect(describeError(new Error('first\nsecond'))).toBe('first')
    expect(describeError('plain')).toBe('plain')
  })
})
