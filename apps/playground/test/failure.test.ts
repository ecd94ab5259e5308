// The status line of a payment that threw (src/page/dom.ts `failureText`): one line, no stack, no
// `[object Object]`, and a payment whose outcome is unknown said to be so.
import { PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { describe, expect, it } from 'vitest'
import { failureText, problemOf } from '../src/page/dom.js'

describe('failureText', () => {
  it('names a policy refusal, an unknown outcome and a failure', () => {
    expect([
      failureText(new PolicyError('budget', 'amount 5 sat exceeds the remaining budget 4')),
      failureText(
        new PaymentFailedError(
          'the paid request failed after the credential was sent; the payment may have gone through: check before paying again',
          { code: 'outcome-unknown', mayHaveSettled: true },
        ),
      ),
      failureText(new PaymentFailedError('lightning: the node lost the payment', { mayHaveSettled: true })),
      failureText(
        new PaymentFailedError('solana: the challenge is for devnet, this client pays on localnet'),
      ),
    ]).toMatchInlineSnapshot(`
      [
        "Refused by policy: amount 5 sat exceeds the remaining budget 4",
        "Outcome unknown: the paid request failed after the credential was sent; the payment may have gone through: check before paying again (it stays booked against the budget)",
        "Outcome unknown: lightning: the node lost the payment; the payment may have gone through: check before paying again (it stays booked against the budget)",
        "Failed: solana: the challenge is for devnet, this client pays on localnet",
      ]
    `)
  })

  it('never shows [object Object], undefined or a stack', () => {
    expect([
      failureText({ code: -32603 }),
      failureText(undefined),
      failureText('rpc down'),
      failureText(new Error('first line\n    at f (page.js:1:1)')),
    ]).toMatchInlineSnapshot(`
      [
        "Failed: an unexpected error (details in the browser console)",
        "Failed: an unexpected error (details in the browser console)",
        "Failed: rpc down",
        "Failed: first line",
      ]
    `)
  })
})

describe('problemOf', () => {
  it('reads a problem object, and nothing from a body that is not one', () => {
    expect([
      problemOf('{"detail":"x"}'),
      problemOf('Payment Required'),
      problemOf('[1]'),
      problemOf('null'),
    ]).toMatchInlineSnapshot(`
        [
          {
            "detail": "x",
          },
          undefined,
          undefined,
          undefined,
        ]
      `)
  })
})
