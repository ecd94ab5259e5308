// Paid MCP tool view: the page is an MCP client speaking JSON-RPC over Streamable HTTP with plain fetch
// (initialize, then tools/call), so every message is visible. The paid tool answers -32042 with its
// challenges; the page pays one with the core client's `pay` (Tempo, signed here with a devnet key,
// under the spend policy) and retries with the credential in `params._meta`; the result carries the
// receipt in `_meta`. The server is an @mppkit/mcp server (src/server/mcp.ts).
import { Challenge, Client, PaymentFailedError, type Policy } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'
import { redact } from '../../../../packages/core/src/internal/inspect.js'
import { applyPolicyButton, baseUnits, display, failureText, h, pretty, setStatus } from './dom.js'
import { offersTable, steps } from './flow.js'
import { type Config, getJson, type View } from './main.js'
import { type Balances, balanceBox } from './payment.js'

/** The MCP part of /api/config. */
export type McpConfig = { path: string; tool: string; price: string }

/** "Payment Required" (draft-payment-transport-mcp-00). */
const paymentRequired = -32042
const credentialKey = 'org.paymentauth/credential'
const receiptKey = 'org.paymentauth/receipt'

type JsonRpcAnswer = {
  result?: { content?: { text?: string }[]; _meta?: Record<string, unknown>; [key: string]: unknown }
  error?: { code: number; message: string; data?: { challenges?: unknown[]; [key: string]: unknown } }
  [key: string]: unknown
}

/** The challenges of a -32042 error, each validated before it may be paid. */
function challengesOf(answer: JsonRpcAnswer): Challenge.Challenge[] {
  const valid: Challenge.Challenge[] = []
  for (const challenge of answer.error?.data?.challenges ?? []) {
    try {
      // "Clients SHOULD validate challenge structure before fulfilling payment."
      Challenge.validate(challenge as Challenge.Challenge)
      valid.push(challenge as Challenge.Challenge)
    } catch {}
  }
  return valid
}

export function mcpViews(config: Config): View[] {
  const mcp = config.mcp
  const t = config.tempo
  if (!mcp || !t) return []
  const id = 'mcp'
  const maxAmount = h('input', { id: `${id}-max`, inputmode: 'decimal', value: '0.01' })
  const budget = h('input', { id: `${id}-budget`, inputmode: 'decimal', value: '0.1' })
  const status = h('p', { class: 'status', id: `${id}-status`, role: 'status' })
  const spent = h('span', { id: `${id}-spent` }, '0')
  const balances = h('div', { class: 'balances', id: `${id}-balances` })
  const out = steps(id)
  let session: string | undefined
  let payer: Client.Client | undefined
  let nextId = 1

  const newPayer = () => {
    const policy: Policy = {
      currencies: [t.currency],
      maxAmount: { [t.currency]: baseUnits(maxAmount.value, t.decimals) },
      budget: { [t.currency]: baseUnits(budget.value, t.decimals) },
    }
    payer = Client.create({
      methods: [
        tempo({
          account: privateKeyToAccount(t.chargePayer.privateKey),
          rpcUrl: t.rpcUrl,
          chainId: t.chainId,
        }),
      ],
      policy,
    })
    spent.textContent = '0'
  }

  /** One JSON-RPC message over Streamable HTTP (JSON responses); notifications answer 202. */
  const rpc = async (message: Record<string, unknown>) => {
    const response = await fetch(mcp.path, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' } : {}),
      },
      body: JSON.stringify({ jsonrpc: '2.0', ...message }),
    })
    session = response.headers.get('mcp-session-id') ?? session
    return response.status === 202 ? undefined : ((await response.json()) as JsonRpcAnswer)
  }

  const balancesNow = async (): Promise<Balances> => {
    const all = (await getJson('/api/balances')).tempo as Record<string, string>
    return {
      [`payer (page, ${t.symbol})`]: display(all.chargePayer!, t.decimals),
      [`payee (${t.symbol})`]: display(all.payee!, t.decimals),
    }
  }

  const call = h('button', { type: 'button', id: `${id}-call` }, `Call the paid tool "${mcp.tool}"`)
  call.addEventListener('click', async () => {
    call.disabled = true
    out.clear()
    setStatus(status, 'Calling…')
    try {
      if (!payer) newPayer()
      const before = await balancesNow()
      balances.replaceChildren(balanceBox('Balances', before, undefined))
      const started = performance.now()
      if (!session) {
        const initialized = await rpc({
          id: nextId++,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'mppkit-playground', version: '0.0.0' },
          },
        })
        await rpc({ method: 'notifications/initialized' })
        out.step(
          'initialize',
          `1. initialize: the server advertises payments (session ${session?.slice(0, 8)}…)`,
          h('pre', {}, pretty(initialized?.result?.capabilities)),
        )
      }
      const params = { name: mcp.tool, arguments: {} }
      const unpaid = await rpc({ id: nextId++, method: 'tools/call', params })
      out.step(
        'unpaid',
        '2. tools/call without payment → JSON-RPC error',
        h('pre', {}, pretty(unpaid?.error ?? unpaid)),
      )
      if (unpaid?.error?.code !== paymentRequired) {
        setStatus(status, `Unexpected answer: ${pretty(unpaid).slice(0, 200)}`, 'bad')
        return
      }
      const challenges = challengesOf(unpaid)
      out.step(
        'offers',
        `3. The -32042's challenges, decoded (${challenges.length})`,
        offersTable(challenges, () => ({ decimals: t.decimals, symbol: t.symbol })),
      )
      let payment: Awaited<ReturnType<Client.Client['pay']>>
      try {
        // The same ledger and policy as HTTP; the transport names what is paid for.
        payment = await payer!.pay(challenges, { url: `mcp://fortunes/tools/call/${mcp.tool}` })
      } catch (error) {
        setStatus(status, failureText(error), 'bad')
        spent.textContent = display(payer!.ledger.spent(t.currency), t.decimals)

        return
      }
      out.step(
        'credential',
        `4. Payment signed in the page; the credential goes in the request's _meta under ${credentialKey} (secrets masked)`,
        h(
          'pre',
          {},
          pretty({
            _meta: {
              [credentialKey]: {
                challenge: { id: payment.credential.challenge.id, method: payment.challenge.method },
                ...(payment.credential.source ? { source: payment.credential.source } : {}),
                payload: redact(payment.credential.payload),
              },
            },
          }),
        ),
      )
      let paid: JsonRpcAnswer | undefined
      try {
        paid = await rpc({
          id: nextId++,
          method: 'tools/call',
          params: { ...params, _meta: { [credentialKey]: payment.credential } },
        })
      } catch (error) {
        // The credential left (a dropped connection, an answer that is not JSON-RPC): the payment stays
        // booked, and may have gone through.
        spent.textContent = display(payer!.ledger.spent(t.currency), t.decimals)
        throw new PaymentFailedError(
          `the paid tools/call failed after the credential was sent (${failureText(error).replace(/^Failed: /, '')}); the payment may have gone through: check before paying again`,
          { code: 'outcome-unknown', cause: error, mayHaveSettled: true },
        )
      }
      const ms = Math.round(performance.now() - started)
      if (!paid?.result) {
        out.step('refused', '5. The server refused the credential', h('pre', {}, pretty(paid?.error ?? paid)))
        setStatus(
          status,
          `Not paid: ${paid?.error ? `${paid.error.code} ${paid.error.message}` : 'no JSON-RPC answer'}`,
          'bad',
        )
        return
      }
      const receipt = paid.result._meta?.[receiptKey] as
        | { reference?: string; challengeId?: string }
        | undefined
      if (receipt) payment.receipt(receipt as never)
      out.step(
        'result',
        '5. The tool result',
        h('pre', {}, paid.result.content?.map((part) => part.text).join('\n') ?? pretty(paid.result)),
      )
      const recordBox = h('pre', {})
      out.step(
        'receipt',
        `6. Receipt, from the result's _meta under ${receiptKey}`,
        h('pre', {}, pretty(receipt)),
        receipt?.reference
          ? h(
              'button',
              {
                type: 'button',
                class: 'record',
                onclick: async () => {
                  recordBox.textContent = 'loading the devnet record…'
                  recordBox.textContent = pretty(await getJson(`/api/record/tempo/${receipt.reference}`))
                },
              },
              `Devnet record of ${receipt.reference.slice(0, 18)}…`,
            )
          : '',
        recordBox,
      )
      spent.textContent = display(payer!.ledger.spent(t.currency), t.decimals)
      setStatus(
        status,
        receipt?.challengeId === payment.challenge.id
          ? `Paid: tool result in ${ms} ms`
          : 'Paid, but the result has no receipt for this challenge',
        receipt ? 'ok' : 'bad',
      )
      balances.replaceChildren(balanceBox('Balances', before, await balancesNow()))
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      call.disabled = false
    }
  })
  const apply = applyPolicyButton(`${id}-apply`, status, newPayer)
  const element = h(
    'section',
    { id: `view-${id}` },
    h(
      'p',
      {},
      `An MCP server (Streamable HTTP at ${mcp.path}) whose tool "${mcp.tool}" costs ${display(mcp.price, t.decimals)} ${t.symbol} on Tempo, through @mppkit/mcp. The page speaks JSON-RPC with fetch so every message shows, and pays in the page with a devnet key.`,
    ),
    h(
      'fieldset',
      { class: 'controls' },
      h('legend', {}, `Spend policy (${t.symbol})`),
      h('label', {}, 'Max per request', maxAmount),
      h('label', {}, 'Budget', budget),
      apply,
      h('span', {}, 'Spent: ', spent, ` ${t.symbol}`),
    ),
    h('div', { class: 'controls' }, call),
    status,
    balances,
    out.list,
  )
  return [{ id, title: 'Paid MCP tool', element }]
}
