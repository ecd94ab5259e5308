import { type Challenge, type Method, PolicyError } from '@mppkit/core'
import { printable } from '@mppkit/core/cli'

type Quote = Method.Quote

import { formatUnits } from './cliArgs.js'

/** TIP-20 tokens all have 6 decimals. */
export const tip20Decimals = 6

/** What the payer is about to authorize, in words a person checks before saying yes. */
export type Intent = {
  kind: 'charge' | 'session'
  realm: string
  recipient: string
  currency: string
  /** Moved by this payment (a charge), or paid per request (a session). */
  amount: bigint
  /** Locked in the escrow when a session channel opens. */
  deposit?: bigint
}

/** Limits of the paying CLI, all in base units. */
export type GuardLimits = {
  /** Largest single payment (a charge, or a session's price per request). */
  maxAmount: bigint
  /** Largest session deposit, and the largest cumulative amount a session may authorize. */
  maxDeposit: bigint
  /** Above this, ask first (when a person is there to answer). */
  confirmAbove: bigint
}

/**
 * One line describing a payment: amount in display units, currency, recipient, realm. All but the amounts
 * are the server's (the symbol the token contract's): printed without control characters, which could
 * rewrite the line a person confirms (`\r`, `ESC[2K`).
 */
export function describeIntent(intent: Intent, symbol: string | undefined): string {
  const currency = printable(intent.currency)
  const units = (amount: bigint) =>
    `${formatUnits(amount, tip20Decimals)} ${symbol !== undefined ? printable(symbol) : currency}`
  const where = `to ${printable(intent.recipient)} (realm ${printable(intent.realm)}; currency ${currency})`
  if (intent.kind === 'session')
    return intent.deposit !== undefined
      ? `open a tempo session: deposit ${units(intent.deposit)} into escrow, ${units(intent.amount)} per request, paid ${where}`
      : `pay ${units(intent.amount)} on the open tempo session ${where}`
  return `pay ${units(intent.amount)} (${intent.amount} base units) ${where}`
}

/**
 * Wraps a client method so that every payment is checked against the CLI's caps before anything is
 * signed, announced on stderr, and (above `confirmAbove`) confirmed. Refusals are `PolicyError`s, which
 * the core client treats as "do not pay this challenge".
 *
 * @example
 * ```ts
 * const method = guard(chargeClient(options), limits, { announce, confirm, symbolOf })
 * ```
 */
export function guard<method extends Method.Client>(
  method: method,
  limits: GuardLimits,
  hooks: {
    announce(line: string): void
    confirm(line: string): Promise<boolean>
    symbolOf(currency: string): Promise<string | undefined>
  },
): Method.Client {
  const quoteOf = (request: Record<string, unknown>, challenge?: Challenge.Challenge): Quote =>
    method.quote
      ? method.quote(request as never, challenge)
      : { amount: BigInt(String(request.amount)), currency: String(request.currency) }
  return {
    definition: method.definition,
    quote(request: Record<string, unknown>, challenge?: Challenge.Challenge) {
      const quote = quoteOf(request, challenge)
      const cap = (what: string, amount: bigint, max: bigint, flag: string) => {
        if (amount > max)
          throw new PolicyError(
            'max-amount',
            `refusing to ${what} ${formatUnits(amount, tip20Decimals)} of ${printable(quote.currency)} (${amount} base units): ` +
              `above the cap of ${formatUnits(max, tip20Decimals)} (${max} base units); raise it with ${flag} <base units>`,
          )
      }
      cap('pay', quote.amount, limits.maxAmount, '--max-amount')
      if (quote.deposit !== undefined) cap('deposit', quote.deposit, limits.maxDeposit, '--max-deposit')
      return quote
    },
    async createPayload(context) {
      const request = context.request as Record<string, unknown>
      const quote = quoteOf(request, context.challenge)
      const intent: Intent = {
        kind: method.definition.intent === 'session' ? 'session' : 'charge',
        realm: context.challenge.realm,
        recipient: String(request.recipient),
        currency: quote.currency,
        amount: method.definition.intent === 'session' ? BigInt(String(request.amount)) : quote.amount,
        ...(quote.deposit !== undefined ? { deposit: quote.deposit } : {}),
      }
      const line = describeIntent(intent, await hooks.symbolOf(quote.currency).catch(() => undefined))
      const moved = quote.deposit ?? quote.amount
      if (moved > limits.confirmAbove && !(await hooks.confirm(line)))
        throw new PolicyError('declined', 'payment declined')
      hooks.announce(line)
      return method.createPayload(context as never)
    },
    ...(method.onReceipt ? { onReceipt: method.onReceipt.bind(method) } : {}),
  }
}
