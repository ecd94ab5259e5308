// Tempo views: a charge (pull: the server broadcasts the signed transfer; push: the page broadcasts it
// and sends the hash) and a session (an SSE stream metered per chunk, with top-up and close). The page
// signs with devnet keys, through @mppkit/method-tempo/client.
import { Client, receipt as receiptOf } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'
import { baseUnits, display, failureText, h, pretty, setStatus } from './dom.js'
import { type Exchange, maskedCredential, offersOf, offersTable, recordingFetch, steps } from './flow.js'
import { type Config, getJson, type View } from './main.js'
import { type Balances, balanceBox, paymentView } from './payment.js'

export function tempoViews(config: Config): View[] {
  const t = config.tempo!
  const units = { decimals: t.decimals, symbol: t.symbol }
  const balances = async (): Promise<Balances> => {
    const all = (await getJson('/api/balances')).tempo as Record<string, string>
    return {
      'payer (page)': display(all.chargePayer!, t.decimals),
      'session payer (page)': display(all.sessionPayer!, t.decimals),
      payee: display(all.payee!, t.decimals),
      escrow: display(all.escrow!, t.decimals),
    }
  }
  const record = (reference: string) => getJson(`/api/record/tempo/${reference}`)
  const mode = h(
    'select',
    { id: 'tempo-charge-mode' },
    h('option', { value: 'pull' }, 'pull (server broadcasts)'),
    h('option', { value: 'push' }, 'push (page broadcasts)'),
  )
  const charge = paymentView({
    id: 'tempo-charge',
    title: 'Tempo charge',
    intro: `GET /api/demo/tempo/charge costs ${display(config.prices.tempoCharge, t.decimals)} ${t.symbol}, paid from a devnet key in this page.`,
    url: '/api/demo/tempo/charge',
    units,
    policy: { maxAmount: '0.01', budget: '0.1' },
    controls: [h('label', {}, 'Mode', mode)],
    currency: t.currency,
    methods: () => [
      tempo({
        account: privateKeyToAccount(t.chargePayer.privateKey),
        rpcUrl: t.rpcUrl,
        chainId: t.chainId,
        mode: mode.value as 'pull' | 'push',
      }),
    ],
    balances,
    record,
  })
  // The client is built on the first payment after a mode change (its method holds the mode).
  mode.addEventListener('change', () =>
    (charge.element.querySelector('#tempo-charge-apply') as HTMLButtonElement).click(),
  )
  return [charge, sessionView(config, balances)]
}

function sessionView(config: Config, balances: () => Promise<Balances>): View {
  const t = config.tempo!
  // Absolute: the session client keys channels and sends vouchers by URL.
  const url = new URL('/api/demo/tempo/session', location.href).href
  const price = BigInt(config.prices.tempoChunk)
  const deposit = h('input', {
    id: 'tempo-session-deposit',
    inputmode: 'decimal',
    value: display(price * 5n, t.decimals),
  })
  const maxDeposit = h('input', { id: 'tempo-session-max-deposit', inputmode: 'decimal', value: '0.01' })
  const status = h('p', { class: 'status', id: 'tempo-session-status', role: 'status' })
  const meterBar = h('span', {})
  const meterText = h('p', { id: 'tempo-session-meter' }, 'No channel yet.')
  const stream = h('p', { class: 'stream', id: 'tempo-session-stream', 'aria-live': 'polite' })
  const balanceArea = h('div', { class: 'balances', id: 'tempo-session-balances' })
  const out = steps('tempo-session')
  const log: Exchange[] = []
  let sessions: ReturnType<typeof tempo.session> | undefined
  let client: Client.Client | undefined
  let before: Balances | undefined
  let topUps = 0
  const channel = () => (sessions ? [...sessions.channels.values()][0] : undefined)
  const showMeter = () => {
    const state = channel()
    if (!state) return
    meterBar.style.width = `${Number((state.cumulative * 100n) / (state.deposit || 1n))}%`
    meterText.textContent = `channel ${state.channelId.slice(0, 10)}…  deposit ${display(state.deposit, t.decimals)}  vouchers signed ${display(state.cumulative, t.decimals)}  spent ${display(state.spent, t.decimals)} ${t.symbol}  top-ups ${topUps}`
  }
  const open = h(
    'button',
    { type: 'button', id: 'tempo-session-stream-button' },
    'Stream (open or reuse the channel)',
  )
  const close = h(
    'button',
    { type: 'button', id: 'tempo-session-close', disabled: true },
    'Close the channel (refund)',
  )
  open.addEventListener('click', async () => {
    open.disabled = true
    out.clear()
    log.length = 0
    stream.textContent = ''
    try {
      if (!sessions) {
        const fetch = recordingFetch(log)
        sessions = tempo.session({
          account: privateKeyToAccount(t.sessionPayer.privateKey),
          rpcUrl: t.rpcUrl,
          chainId: t.chainId,
          deposit: baseUnits(deposit.value, t.decimals),
          fetch,
        })
        client = Client.create({
          methods: [sessions],
          policy: {
            currencies: [t.currency],
            maxDeposit: { [t.currency]: baseUnits(maxDeposit.value, t.decimals) },
          },
          fetch,
        })
        topUps = 0
        before = await balances()
      }
      balanceArea.replaceChildren(balanceBox('Balances', before, undefined))
      setStatus(status, 'Streaming…')
      let response: Response
      try {
        response = await client!.fetch(url)
      } catch (error) {
        setStatus(status, failureText(error), 'bad')

        sessions = undefined
        return
      }
      const unpaid = log.find((exchange) => exchange.status === 402)
      if (unpaid)
        out.step(
          'offers',
          `402 offers of ${new URL(url).pathname}`,
          offersTable(offersOf(unpaid), () => ({ decimals: t.decimals, symbol: `${t.symbol}` })),
        )
      const paid = log.find((exchange) => exchange.authorization)
      if (paid?.authorization)
        out.step(
          'credential',
          'Credential (open or voucher, decoded, secrets masked)',
          h('pre', {}, pretty(maskedCredential(paid.authorization))),
        )
      showMeter()
      if (!response.ok || !response.body) {
        setStatus(status, `Not paid: ${response.status} ${await response.text()}`, 'bad')
        return
      }
      let buffer = ''
      let last: unknown
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        buffer += value
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const name = /^event: (.*)$/m.exec(event)?.[1] ?? 'message'
          const data = /^data: (.*)$/m.exec(event)?.[1] ?? ''
          if (name === 'payment-need-voucher') {
            const depositBefore = channel()?.deposit
            await sessions!.voucher(url, BigInt(JSON.parse(data).requiredCumulative))
            if (channel()?.deposit !== depositBefore) topUps++
          } else if (name === 'payment-receipt') last = JSON.parse(data)
          else stream.textContent += `${data} `
          showMeter()
        }
      }
      const receipt = last ?? receiptOf(response)
      if (receipt) out.step('receipt', 'Stream receipt (decoded)', h('pre', {}, pretty(receipt)))
      setStatus(
        status,
        `Streamed: ${stream.textContent.trim().split(/\s+/).length} chunks paid, ${topUps} top-up(s)`,
        'ok',
      )
      balanceArea.replaceChildren(balanceBox('Balances', before, await balances()))
      close.disabled = false
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      open.disabled = false
    }
  })
  close.addEventListener('click', async () => {
    close.disabled = true
    try {
      const state = channel()
      const response = await sessions!.close(url)
      const receipt = receiptOf(response)
      // The close receipt's `spent` is final (the client's view can lag one chunk behind).
      const spent = BigInt(String((receipt as { spent?: unknown } | undefined)?.spent ?? state?.spent ?? 0n))
      const refund = state ? state.deposit - spent : 0n
      out.step('close', `Close: ${response.status}`, h('pre', {}, pretty(receipt ?? (await response.text()))))
      setStatus(
        status,
        response.ok
          ? `Closed: spent ${display(spent, t.decimals)}, refunded ${display(refund, t.decimals)} ${t.symbol}`
          : `Close failed: ${response.status}`,
        response.ok ? 'ok' : 'bad',
      )
      balanceArea.replaceChildren(balanceBox('Balances', before, await balances()))
      sessions = undefined
    } catch (error) {
      setStatus(status, `Close failed: ${failureText(error).replace(/^Failed: /, '')}`, 'bad')
      close.disabled = false
    }
  })
  const element = h(
    'section',
    { id: 'view-tempo-session' },
    h(
      'p',
      {},
      `GET ${new URL(url).pathname} streams words over SSE at ${display(price, t.decimals)} ${t.symbol} per chunk, paid with vouchers on a channel in the escrow; a small deposit runs out mid-stream and is topped up.`,
    ),
    h(
      'div',
      { class: 'controls' },
      h('label', {}, `Deposit (${t.symbol})`, deposit),
      h('label', {}, `Policy: max deposit (${t.symbol})`, maxDeposit),
      open,
      close,
    ),
    status,
    h('div', { class: 'meter', 'aria-hidden': 'true' }, meterBar),
    meterText,
    stream,
    balanceArea,
    out.list,
  )
  return { id: 'tempo-session', title: 'Tempo session', element }
}
