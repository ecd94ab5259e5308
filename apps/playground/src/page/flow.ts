// One payment, shown step by step: the unpaid request and its 402 with every offer decoded, the
// credential (decoded, secrets masked), the paid response, the decoded receipt and the rail's record.
import { type Challenge, receipt as receiptOf } from '@mppkit/core/client'
import { inspectValue, redact } from '../../../../packages/core/src/internal/inspect.js'
import { display, h, pretty } from './dom.js'

export type Exchange = {
  method: string
  url: string
  authorization: string | null
  status: number
  headers: Headers
  body?: string
}

/** A fetch that records each exchange (headers only; bodies of 402s are read from a clone). */
export function recordingFetch(log: Exchange[]): typeof fetch {
  return async (input, init) => {
    const request = new Request(input, init)
    const authorization = request.headers.get('authorization')
    const response = await fetch(request)
    const exchange: Exchange = {
      method: request.method,
      url: request.url,
      authorization,
      status: response.status,
      headers: response.headers,
    }
    if (response.status === 402) exchange.body = await response.clone().text()
    log.push(exchange)
    return response
  }
}

export type Units = { decimals: number; symbol: string; minDecimals?: number }

/** The offers of a 402, one row each: method, intent, amount in display units, expiry, binding. */
export function offersTable(
  challenges: readonly Challenge.Challenge[],
  units: (c: Challenge.Challenge) => Units,
) {
  const now = Date.now()
  return h(
    'table',
    { class: 'offers' },
    h(
      'tr',
      { class: 'head' },
      h('th', {}, 'method/intent'),
      h('th', {}, 'amount'),
      h('th', {}, 'expires'),
      h('th', {}, 'binding (id)'),
      h('th', {}, 'request'),
    ),
    ...challenges.map((challenge) => {
      const request = challenge.request as Record<string, unknown>
      const unit = units(challenge)
      const expires = challenge.expires
        ? `${challenge.expires} (in ${Math.round((Date.parse(challenge.expires) - now) / 1000)} s)`
        : '—'
      return h(
        'tr',
        { class: 'offer' },
        h('td', { 'data-label': 'method/intent' }, `${challenge.method}/${challenge.intent}`),
        h(
          'td',
          { 'data-label': 'amount' },
          request.amount === undefined
            ? '—'
            : `${display(String(request.amount), unit.decimals, unit.minDecimals)} ${unit.symbol}${request.unitType ? ` per ${String(request.unitType)}` : ''}`,
        ),
        h('td', { 'data-label': 'expires' }, expires),
        h('td', { 'data-label': 'binding (id)' }, h('code', {}, challenge.id)),
        h('td', { 'data-label': 'request' }, h('pre', {}, pretty(request))),
      )
    }),
  )
}

/** Decodes a challenge header's offers. */
export function offersOf(exchange: Exchange | undefined): Challenge.Challenge[] {
  const header = exchange?.headers.get('www-authenticate')
  if (!header) return []
  const inspection = inspectValue(header)
  return inspection.kind === 'challenges' ? inspection.challenges : []
}

/** The credential of an `Authorization: Payment` value, decoded with its secrets masked. */
export function maskedCredential(authorization: string): unknown {
  const inspection = inspectValue(authorization)
  if (inspection.kind !== 'credential') return { undecodable: inspection.kind }
  const { credential } = inspection
  return {
    challenge: {
      id: credential.challenge.id,
      method: credential.challenge.method,
      intent: credential.challenge.intent,
      realm: credential.challenge.realm,
    },
    ...(credential.source ? { source: credential.source } : {}),
    payload: redact(credential.payload),
  }
}

export type Steps = {
  list: HTMLOListElement
  step(id: string, title: string, ...body: (Node | string)[]): HTMLLIElement
  clear(): void
}

export function steps(prefix: string): Steps {
  const list = h('ol', { class: 'steps', 'aria-live': 'polite' })
  return {
    list,
    step(id, title, ...body) {
      const item = h('li', { id: `${prefix}-${id}` }, h('h3', {}, title), ...body)
      list.append(item)
      return item
    },
    clear: () => list.replaceChildren(),
  }
}

/** Renders the exchanges of one `client.fetch` and its final response as steps. */
export async function showPayment(
  out: Steps,
  log: readonly Exchange[],
  response: Response,
  units: (c: Challenge.Challenge) => Units,
  record: (reference: string) => Promise<unknown>,
): Promise<unknown> {
  const unpaid = log.find((exchange) => exchange.status === 402 && !exchange.authorization) ?? log[0]
  if (unpaid) {
    out.step(
      'unpaid',
      `1. Unpaid request: ${unpaid.method} ${new URL(unpaid.url).pathname} → ${unpaid.status}`,
      h('pre', {}, `WWW-Authenticate: ${unpaid.headers.get('www-authenticate') ?? '(none)'}`),
    )
    out.step('offers', '2. The 402: every offer decoded', offersTable(offersOf(unpaid), units))
  }
  const paid = [...log].reverse().find((exchange) => exchange.authorization)
  if (paid?.authorization)
    out.step(
      'credential',
      '3. Credential (Authorization: Payment, decoded, secrets masked)',
      h('pre', {}, pretty(maskedCredential(paid.authorization))),
    )
  const body = await response.text()
  out.step(
    'response',
    `4. ${response.ok ? 'Paid response' : 'The payment was refused'}: ${response.status}`,
    h('pre', {}, body),
  )
  const receipt = receiptOf(response)
  if (receipt) {
    const recordBox = h('pre', {})
    const reference = String((receipt as { reference?: unknown }).reference ?? '')
    out.step(
      'receipt',
      '5. Receipt (Payment-Receipt, decoded)',
      h('pre', {}, pretty(receipt)),
      reference
        ? h(
            'button',
            {
              type: 'button',
              class: 'record',
              onclick: async () => {
                recordBox.textContent = 'loading the devnet record…'
                recordBox.textContent = pretty(await record(reference))
              },
            },
            `Devnet record of ${reference.slice(0, 18)}…`,
          )
        : '',
      recordBox,
    )
  }
  return receipt
}
