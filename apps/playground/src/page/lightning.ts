// Lightning views: a charge and a session (an SSE stream billed per chunk, with top-ups and a close that
// refunds). LND speaks gRPC, so the playground's server pays from the devnet payer node with
// @mppkit/method-lightning's client and streams each step here as NDJSON; the page shows them as they
// arrive. The server masks the preimage; no macaroon reaches the page.
import type { Challenge } from '@mppkit/core/client'
import { inspectValue } from '../../../../packages/core/src/internal/inspect.js'
import { applyPolicyButton, failureText, h, pretty, setStatus } from './dom.js'
import { offersTable, type Steps, steps } from './flow.js'
import type { Config, View } from './main.js'
import { type Balances, balanceBox } from './payment.js'

/** The Lightning part of /api/config. */
export type LightningConfig = {
  prices: { charge: string; chunk: string; deposit: number }
  /** The payer's routing fee limit per payment, booked against the budget with it. */
  maxFeeSats: number
  network: string
  payer: string
  payee: string
}

type Step = { type: string; [key: string]: any }

const units = () => ({ decimals: 0, symbol: 'sat' })

/** POSTs `body` to `path` and calls `onStep` for each NDJSON line of the answer, as it arrives. */
async function trace(path: string, body: unknown, onStep: (step: Step) => void | Promise<void>) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (!response.ok || !response.body) {
    const problem = (await response.json().catch(() => ({}))) as { title?: string }
    throw new Error(problem.title ?? `${response.status}`)
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    buffer += value
    for (let end = buffer.indexOf('\n'); end !== -1; end = buffer.indexOf('\n')) {
      const line = buffer.slice(0, end)
      buffer = buffer.slice(end + 1)
      if (line) await onStep(JSON.parse(line) as Step)
    }
  }
}

const balancesOf = (step: Step): Balances => ({
  'payer node (sat)': String(step.payer),
  'payee node (sat)': String(step.payee),
})

const challengesOf = (header: string): Challenge.Challenge[] => {
  const inspection = inspectValue(header)
  return inspection.kind === 'challenges' ? inspection.challenges : []
}

/** Renders the steps every Lightning payment shares: 402, invoice, payment, credential. */
function showCommon(out: Steps, step: Step, count: { n: number }, label: string) {
  const n = () => `${++count.n}.`
  if (step.type === 'exchange' && step.status === 402 && step.wwwAuthenticate) {
    out.step(
      `${label}unpaid`,
      `${n()} Unpaid request: ${step.method} ${step.path} → 402`,
      h('pre', {}, `WWW-Authenticate: ${step.wwwAuthenticate}`),
    )
    out.step(
      `${label}offers`,
      `${n()} The 402: every offer decoded`,
      offersTable(challengesOf(step.wwwAuthenticate), units),
    )
    return true
  }
  if (step.type === 'invoice') {
    out.step(
      `${label}invoice`,
      `${n()} Invoice, as the payer node decodes it (DecodePayReq)`,
      h('pre', {}, pretty({ invoice: step.invoice, ...step.decoded })),
    )
    return true
  }
  if (step.type === 'payment') {
    out.step(
      `${label}payment`,
      `${n()} Payment from the payer node in ${step.ms} ms (the payee node's invoice record)`,
      h(
        'pre',
        {},
        pretty({ paymentHash: step.paymentHash, preimage: step.preimage, payeeInvoice: step.payeeRecord }),
      ),
    )
    return true
  }
  if (step.type === 'return-invoice') {
    out.step(
      `${label}return-invoice`,
      `${n()} Return invoice for the refund (amountless, from the payer node)`,
      h('pre', {}, step.invoice),
    )
    return true
  }
  if (step.type === 'exchange' && step.credential) {
    out.step(
      `${label}credential`,
      `${n()} Credential (Authorization: Payment, decoded, preimage masked) → ${step.status}`,
      h('pre', {}, pretty(step.credential)),
    )
    return true
  }
  return false
}

/** The status line of a `refused` or `failed` step (the server's error, as the page would show it). */
const stepFailure = (step: Step) =>
  failureText({
    name: step.type === 'refused' ? 'PolicyError' : 'Error',
    message: step.message,
    mayHaveSettled: step.mayHaveSettled === true,
  })

function policyInput(id: string, value: string) {
  return h('input', { id, inputmode: 'numeric', value })
}

function chargeView(config: LightningConfig): View {
  const id = 'lightning-charge'
  const maxAmount = policyInput(`${id}-max`, '1000')
  const budget = policyInput(`${id}-budget`, '10000')
  const status = h('p', { class: 'status', id: `${id}-status`, role: 'status' })
  const spent = h('span', { id: `${id}-spent` }, '0')
  const balances = h('div', { class: 'balances', id: `${id}-balances` })
  const out = steps(id)
  let agent = crypto.randomUUID()
  const pay = h('button', { type: 'button', id: `${id}-pay` }, 'Pay Lightning charge')
  pay.addEventListener('click', async () => {
    pay.disabled = true
    out.clear()
    setStatus(status, 'Paying through the playground server…')
    let before: Balances | undefined
    const count = { n: 0 }
    try {
      await trace(
        '/api/lightning/charge',
        { agent, maxAmount: maxAmount.value.trim(), budget: budget.value.trim() },
        async (step) => {
          if (showCommon(out, step, count, '')) return
          if (step.type === 'balances') {
            if (step.when === 'before') before = balancesOf(step)
            balances.replaceChildren(
              balanceBox(
                'Balances (LND channel balances)',
                before,
                step.when === 'after' ? balancesOf(step) : undefined,
              ),
            )
          } else if (step.type === 'response') {
            out.step(
              'response',
              `${++count.n}. ${step.status === 200 ? 'Paid response' : 'The payment was refused'}: ${step.status}`,
              h('pre', {}, step.body),
            )
            if (step.receipt)
              out.step(
                'receipt',
                `${++count.n}. Receipt (Payment-Receipt, decoded)`,
                h('pre', {}, pretty(step.receipt)),
              )
            spent.textContent = String(step.spent)
            if (step.status === 200 && step.receipt) setStatus(status, `Paid: 200 in ${step.ms} ms`, 'ok')
            else setStatus(status, `Not paid: ${step.status}`, 'bad')
          } else if (step.type === 'refused' || step.type === 'failed') {
            setStatus(status, stepFailure(step), 'bad')
            // What the agent's ledger holds: a payment whose outcome is unknown stays booked.
            if (step.spent !== undefined) spent.textContent = String(step.spent)
          }
        },
      )
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      pay.disabled = false
    }
  })
  // A new agent on the server: the policy applies from its first payment; spent resets to 0.
  const apply = applyPolicyButton(`${id}-apply`, status, () => {
    agent = crypto.randomUUID()
    spent.textContent = '0'
  })
  const element = h(
    'section',
    { id: `view-${id}` },
    h(
      'p',
      {},
      `GET /api/demo/lightning/charge costs ${config.prices.charge} sat: a fresh BOLT11 invoice per challenge on the devnet payee node. The playground's server pays it from the payer node (it holds that node's macaroon; LND speaks gRPC) and shows each step here.`,
    ),
    h(
      'p',
      { id: `${id}-fee-note` },
      `Routing fees count against the budget: each payment books its price plus the payer's routing fee limit of ${config.maxFeeSats} sat (maxFeeSats) before paying, then keeps only the fee paid. So one payment needs a budget of at least ${BigInt(config.prices.charge) + BigInt(config.maxFeeSats)} sat; the max per request bounds the price only.`,
    ),
    h(
      'fieldset',
      { class: 'controls' },
      h('legend', {}, 'Spend policy (sat)'),
      h('label', {}, 'Max per request', maxAmount),
      h('label', {}, 'Budget', budget),
      apply,
      h('span', {}, 'Spent: ', spent, ' sat'),
    ),
    h('div', { class: 'controls' }, pay),
    status,
    balances,
    out.list,
  )
  return { id, title: 'Lightning charge', element }
}

function sessionView(config: LightningConfig): View {
  const id = 'lightning-session'
  const maxDeposit = policyInput(`${id}-max-deposit`, '100')
  const status = h('p', { class: 'status', id: `${id}-status`, role: 'status' })
  const meterBar = h('span', {})
  const meterText = h('p', { id: `${id}-meter` }, 'No session yet.')
  const stream = h('p', { class: 'stream', id: `${id}-stream`, 'aria-live': 'polite' })
  const balances = h('div', { class: 'balances', id: `${id}-balances` })
  const out = steps(id)
  let agent: string | undefined
  let before: Balances | undefined
  let topUps = 0
  const showMeter = (meter: { sessionId?: string; deposit: string; spent: string } | undefined) => {
    if (!meter) return
    const deposit = BigInt(meter.deposit)
    const used = BigInt(meter.spent) > deposit ? deposit : BigInt(meter.spent)
    meterBar.style.width = `${Number((used * 100n) / (deposit || 1n))}%`
    meterText.textContent = `session ${meter.sessionId?.slice(0, 10) ?? ''}…  deposit ${meter.deposit} sat  spent ${meter.spent} sat  balance ${deposit - used} sat  top-ups ${topUps}`
  }
  const showBalances = (step: Step) => {
    if (step.when === 'before' && !before) before = balancesOf(step)
    balances.replaceChildren(
      balanceBox(
        'Balances (LND channel balances)',
        before,
        step.when === 'after' ? balancesOf(step) : undefined,
      ),
    )
  }
  const open = h(
    'button',
    { type: 'button', id: `${id}-stream-button` },
    'Stream (open or reuse the session)',
  )
  const close = h(
    'button',
    { type: 'button', id: `${id}-close`, disabled: true },
    'Close the session (refund)',
  )
  open.addEventListener('click', async () => {
    open.disabled = true
    out.clear()
    stream.textContent = ''
    setStatus(status, 'Streaming…')
    const count = { n: 0 }
    let chunks = 0
    let streamed = false
    if (!agent) {
      agent = crypto.randomUUID()
      before = undefined
      topUps = 0
    }
    try {
      await trace(`/api/lightning/session/stream`, { agent, maxDeposit: maxDeposit.value.trim() }, (step) => {
        if (step.type === 'balances') return showBalances(step)
        if (step.type === 'chunk') {
          chunks++
          stream.textContent += `${step.text} `
          showMeter(step.meter)
          return
        }
        if (step.type === 'need-topup') {
          topUps++
          showMeter(step.meter)
          out.step(
            `topup-${topUps}`,
            `${++count.n}. The deposit ran out mid-stream: payment-need-topup (the connection stays open)`,
            h('pre', {}, pretty(step.data)),
          )
          return
        }
        if (showCommon(out, step, count, topUps ? `topup-${topUps}-` : '')) return
        if (step.type === 'open') {
          showMeter(step.meter)
          if (step.receipt)
            out.step('receipt', `${++count.n}. Session receipt (decoded)`, h('pre', {}, pretty(step.receipt)))
        } else if (step.type === 'stream-receipt')
          out.step(
            'stream-receipt',
            `${++count.n}. Stream receipt (payment-receipt event)`,
            h('pre', {}, pretty(step.receipt)),
          )
        else if (step.type === 'streamed') {
          streamed = true
          showMeter(step.meter)
          setStatus(status, `Streamed: ${step.chunks} chunks paid, ${topUps} top-up(s)`, 'ok')
          close.disabled = false
        } else if (step.type === 'refused') {
          agent = undefined
          setStatus(status, stepFailure(step), 'bad')
        } else if (step.type === 'failed') setStatus(status, stepFailure(step), 'bad')
      })
      if (!streamed && chunks && status.className === 'status ')
        setStatus(status, `Stream ended after ${chunks} chunks`, 'bad')
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      open.disabled = false
    }
  })
  close.addEventListener('click', async () => {
    close.disabled = true
    const count = { n: 0 }
    try {
      await trace('/api/lightning/session/close', { agent }, (step) => {
        if (step.type === 'balances') return showBalances(step)
        if (step.type === 'exchange' && step.credential)
          return void out.step(
            'close-credential',
            `Close credential (decoded, preimage masked) → ${step.status}`,
            h('pre', {}, pretty(step.credential)),
          )
        if (showCommon(out, step, count, 'close-')) return
        if (step.type === 'closed') {
          out.step(
            'close',
            `Close: ${step.status}`,
            h('pre', {}, pretty({ response: step.body, receipt: step.receipt })),
          )
          const body = step.body as { refundSats?: number; refundStatus?: string }
          const spent = step.meter ? BigInt(step.meter.deposit) - BigInt(body.refundSats ?? 0) : undefined
          setStatus(
            status,
            step.status === 200
              ? `Closed: deposited ${step.meter?.deposit ?? '?'} sat, spent ${spent ?? '?'}, refunded ${body.refundSats ?? 0} sat (${body.refundStatus})`
              : `Close failed: ${step.status}`,
            step.status === 200 ? 'ok' : 'bad',
          )
          agent = undefined
        } else if (step.type === 'failed')
          setStatus(status, `Close failed: ${stepFailure(step).replace(/^Failed: /, '')}`, 'bad')
      })
    } catch (error) {
      setStatus(status, `Close failed: ${failureText(error).replace(/^Failed: /, '')}`, 'bad')
      close.disabled = false
    }
  })
  const element = h(
    'section',
    { id: `view-${id}` },
    h(
      'p',
      {},
      `GET /api/demo/lightning/session streams words over SSE at ${config.prices.chunk} sat per chunk against a prepaid deposit of ${config.prices.deposit} sat; when it runs out the server pauses the stream and asks for a top-up, and Close refunds the unspent balance to a return invoice. The playground's server pays from the devnet payer node.`,
    ),
    h('div', { class: 'controls' }, h('label', {}, 'Policy: max deposit (sat)', maxDeposit), open, close),
    status,
    h('div', { class: 'meter', 'aria-hidden': 'true' }, meterBar),
    meterText,
    stream,
    balances,
    out.list,
  )
  return { id, title: 'Lightning session', element }
}

/** The Lightning views, when the devnet has a payer node. */
export function lightningViews(config: Config): View[] {
  const lightning = config.lightning
  if (!lightning) return []
  return [chargeView(lightning), sessionView(lightning)]
}
