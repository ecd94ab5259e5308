import type { Challenge } from '../Challenge.js'
import { same } from '../client/Currency.js'
import { PolicyError } from '../Errors.js'
import type * as Method from '../Method.js'
import { formatUnits } from './args.js'

/**
 * Caps of a paying CLI, per quote (all in base units of the quote's currency). `undefined` means "no cap
 * is known for this currency": the payment is refused until the person gives one (`--max-amount`),
 * rather than guessed.
 */
export type Limits = {
  /** Largest single payment (a charge, or a session's price per request). */
  maxAmount(quote: Method.Quote): bigint | undefined
  /** Largest session deposit. */
  maxDeposit(quote: Method.Quote): bigint | undefined
  /** Above this, a person at a terminal is asked first; `undefined`: never ask (`--yes`). */
  confirmAbove(quote: Method.Quote): bigint | undefined
  /** The only currency paid (`--currency`): an offer in any other is refused before the caps are read. */
  currency?: string | undefined
  /**
   * `false` when the rail's currencies differ in base units: a refusal that suggests a cap flag suggests
   * `--currency <the quote's currency>` with it, so that the cap given is read in the right units.
   */
  uniformUnits?: boolean | undefined
}

/** How a rail names amounts for people: decimals and a symbol, when it knows them for a currency. */
export type Units = (quote: Method.Quote) => { decimals: number; symbol: string } | undefined

/**
 * A client method that names who its payment pays, where the request's `recipient` does not: Stripe grants
 * its token to the seller profile `methodDetails.networkId`, and its `recipient` is free text the server
 * chooses. The guard then shows that payee after "to", and a `recipient` only as the server's label.
 *
 * @example
 * ```ts
 * const method: Method.Client & NamesPayee = { ...stripeCharge, payee: (request) => `Stripe profile ${request.methodDetails.networkId}` }
 * ```
 */
export type NamesPayee = {
  /** Who receives the money (or may draw it), as a person should read it; `undefined`: not known. */
  payee(request: Record<string, unknown>): string | undefined
}

/** Where the guard speaks: a line before each payment, and a question when one is due. */
export type GuardHooks = {
  announce(line: string): void
  /** Absent when nobody can answer (not a terminal): the payment goes ahead within the caps. */
  confirm?: ((line: string) => Promise<boolean>) | undefined
  units?: Units | undefined
}

// Control characters (C0, DEL, C1), line and paragraph separators, bidirectional marks, overrides and
// isolates (LRM, RLM, ALM, U+202A–U+202E, U+2066–U+2069), and the invisible ones (soft hyphen, zero-width
// space/joiners, word joiner and invisible operators, Mongolian vowel separator, BOM): each could rewrite
// or disguise the line a person confirms (`acct_\u200bgood` looks like `acct_good`).
const hidden = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g
const hiddenInJson = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g

/**
 * A value of the server's (a 402's realm, a problem's detail, a status text) as a CLI may print it: control
 * characters (CR, ESC, C1), bidirectional overrides and invisible characters become `?` and the length is
 * bounded (a cut value ends with `…`), so that a server can neither rewrite or disguise the line a person
 * confirms nor flood the terminal.
 *
 * @example
 * ```ts
 * printable('api\r\u001b[2Kpay 0.01 USDC') // 'api??[2Kpay 0.01 USDC'
 * ```
 */
export function printable(value: unknown, max = 100): string {
  const shown = String(value).replace(hidden, '?')
  // A cut value is marked: `acct_good` + padding + `evil` must not read as `acct_good`.
  return shown.length > max ? `${shown.slice(0, max)}…` : shown
}

/**
 * A value of the server's (a receipt) as JSON a CLI may print: what `JSON.stringify` leaves as is among
 * the characters {@link printable} hides (C1 controls, bidirectional overrides, invisible characters) is
 * written as its `\uXXXX` escape, so the text stays the same JSON and cannot rewrite the terminal; the
 * length is bounded (a cut text ends with `…`).
 *
 * @example
 * ```ts
 * io.stderr(`receipt: ${printableJson(receipt, 2)}\n`)
 * ```
 */
export function printableJson(value: unknown, indent?: number, max = 4_000): string {
  // JSON.stringify escapes U+0000–U+001F itself (the only ones left are its own indenting newlines).
  const shown = (JSON.stringify(value, null, indent) ?? 'null').replace(
    hiddenInJson,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  return shown.length > max ? `${shown.slice(0, max)}…` : shown
}

function amountText(amount: bigint, quote: Method.Quote, units: Units | undefined): string {
  const named = units?.(quote)
  return named
    ? `${formatUnits(amount, named.decimals)} ${printable(named.symbol)} (${amount} base units)`
    : `${amount} base units of ${printable(quote.currency)}`
}

/**
 * One line saying what a payment moves, to whom, for which realm. `recipient` is who is paid; `label`, a
 * name the server gives it that nothing binds (shown quoted, as the server's).
 *
 * @example
 * ```ts
 * describePayment({ method: 'stripe', intent: 'charge', realm: 'api.example', recipient: undefined }, { amount: 50n, currency: 'usd' })
 * // 'stripe/charge: pay 50 base units of usd (realm api.example)'
 * ```
 */
export function describePayment(
  offer: { method: string; intent: string; realm: string; recipient?: unknown; label?: unknown },
  quote: Method.Quote,
  units?: Units,
): string {
  // Quoted: the server's words cannot pass for the line's own (`Shop") (realm bank.example`).
  const label =
    offer.label !== undefined ? ` (the server calls it ${JSON.stringify(printable(offer.label, 64))})` : ''
  const to = offer.recipient !== undefined ? ` to ${printable(offer.recipient)}${label}` : ''
  const what =
    quote.deposit !== undefined
      ? `deposit ${amountText(quote.deposit, quote, units)} and pay ${amountText(quote.amount, quote, units)} per request`
      : `pay ${amountText(quote.amount, quote, units)}`
  return `${printable(offer.method)}/${printable(offer.intent)}: ${what}${to} (realm ${printable(offer.realm)})`
}

function check(
  what: string,
  amount: bigint,
  max: bigint | undefined,
  flag: string,
  quote: Method.Quote,
  limits: Limits,
) {
  // A cap in base units means something only in one currency's units when the rail's currencies differ.
  const named = limits.uniformUnits === false ? `--currency ${printable(quote.currency)} ${flag}` : flag
  if (max === undefined)
    throw new PolicyError(
      'max-amount',
      `refusing to ${what} ${amount} base units of ${printable(quote.currency)}: no default cap for this currency; ` +
        `give one with ${named} <base units>`,
    )
  if (amount > max)
    throw new PolicyError(
      'max-amount',
      `refusing to ${what} ${amount} base units of ${printable(quote.currency)}: above the cap of ${max} base units; ` +
        `raise it with ${named} <base units>`,
    )
}

/**
 * Wraps a client method so that every payment is checked against the CLI's currency and caps before
 * anything is signed or sent, announced on stderr, and (above `confirmAbove`) confirmed by the person at the
 * terminal. The line names as payee the one the method gives ({@link NamesPayee}), else the request's
 * `recipient`. Refusals are `PolicyError`s, which the core client treats as "do not pay this challenge".
 *
 * @example
 * ```ts
 * const method = guard(chargeClient(options), limits, { announce: (l) => io.stderr(`${l}\n`), confirm: io.confirm })
 * ```
 */
export function guard<method extends Method.Client>(
  method: method,
  limits: Limits,
  hooks: GuardHooks,
): Method.Client {
  const named = (method as Partial<NamesPayee>).payee
  const payeeOf = typeof named === 'function' ? named.bind(method) : undefined
  const quoteOf = (request: Record<string, unknown>, challenge?: Challenge): Method.Quote =>
    method.quote
      ? method.quote(request as never, challenge)
      : { amount: BigInt(String(request.amount)), currency: String(request.currency) }
  const checked = (request: Record<string, unknown>, challenge?: Challenge) => {
    const quote = quoteOf(request, challenge)
    if (limits.currency !== undefined && !same(quote.currency, limits.currency))
      throw new PolicyError(
        'currency',
        `refusing to pay ${quote.amount} base units of ${printable(quote.currency)}: ` +
          `only ${printable(limits.currency)} is paid (--currency)`,
      )
    check('pay', quote.amount, limits.maxAmount(quote), '--max-amount', quote, limits)
    if (quote.deposit !== undefined)
      check('deposit', quote.deposit, limits.maxDeposit(quote), '--max-deposit', quote, limits)
    return quote
  }
  return {
    definition: method.definition,
    quote: (request: Record<string, unknown>, challenge?: Challenge) => checked(request, challenge),
    async createPayload(context) {
      const request = context.request as Record<string, unknown>
      const quote = checked(request, context.challenge)
      // The payee the method names (the party its payment is bound to), else the request's `recipient`.
      const payee = payeeOf?.(request)
      const line = describePayment(
        {
          ...context.challenge,
          recipient: payee ?? request.recipient,
          ...(payee !== undefined && request.recipient !== undefined ? { label: request.recipient } : {}),
        },
        quote,
        hooks.units,
      )
      const moved = quote.deposit ?? quote.amount
      const above = limits.confirmAbove(quote)
      if (above !== undefined && moved > above && hooks.confirm && !(await hooks.confirm(line)))
        throw new PolicyError('declined', 'payment declined')
      hooks.announce(line)
      return method.createPayload(context as never)
    },
    ...(method.onReceipt ? { onReceipt: method.onReceipt.bind(method) } : {}),
  }
}
