// The playground page: one view per rail and intent, plus the inspector.
import { Client } from '@mppkit/core/client'
import { inspectUrl, inspectValue, render } from '../../../../packages/core/src/internal/inspect.js'
import { h } from './dom.js'
import { lightningViews } from './lightning.js'
import { mcpViews } from './mcp.js'
import { stripeView } from './stripe.js'
import { tempoViews } from './tempo.js'

export type Config = {
  rails: { tempo: boolean; stripe: boolean }
  prices: { tempoCharge: string; tempoChunk: string; stripeCharge: string }
  tempo?: {
    rpcUrl: string
    chainId: number
    currency: `0x${string}`
    decimals: number
    symbol: string
    escrow: string
    payee: string
    chargePayer: { address: string; privateKey: `0x${string}` }
    sessionPayer: { address: string; privateKey: `0x${string}` }
  }
  stripe?: { networkId: string; cards: Record<string, string> }
}

export type View = { id: string; title: string; element: HTMLElement }

export const getJson = async (path: string) => (await fetch(path)).json() as Promise<any>

function inspectorView(): View {
  const input = h('textarea', {
    id: 'inspect-input',
    'aria-label': 'A WWW-Authenticate, Authorization or Payment-Receipt value, or a URL',
    placeholder: 'Paste a WWW-Authenticate, Authorization or Payment-Receipt value, or a URL',
  })
  const output = h('pre', { id: 'inspect-output', 'aria-live': 'polite' })
  const run = async () => {
    const value = input.value.trim()
    if (/^https?:\/\//i.test(value)) {
      output.textContent = 'fetching…'
      const { text } = await inspectUrl(value).catch((error: Error) => ({
        text: `fetch failed: ${error.message}`,
      }))
      output.textContent = text
    } else output.textContent = render(inspectValue(value))
  }
  const element = h(
    'section',
    { id: 'view-inspector' },
    h(
      'p',
      {},
      'Decodes a header value with the same code as ',
      h('code', {}, 'mppkit inspect'),
      ' (secrets masked), or fetches a URL and decodes its 402 or receipt.',
    ),
    input,
    h(
      'div',
      { class: 'controls' },
      h('button', { type: 'button', id: 'inspect-run', onclick: run }, 'Inspect'),
    ),
    output,
  )
  return { id: 'inspector', title: 'Inspector', element }
}

async function main() {
  const config = (await getJson('/api/config')) as Config
  const views: View[] = [
    ...(config.tempo ? tempoViews(config) : []),
    ...(config.stripe ? stripeView(config) : []),
    ...lightningViews(config),
    ...mcpViews(config),
    inspectorView(),
  ]
  const tabs = document.getElementById('tabs')!
  const container = document.getElementById('views')!
  container.replaceChildren()
  const select = (id: string) => {
    for (const view of views) view.element.hidden = view.id !== id
    for (const tab of tabs.querySelectorAll('button'))
      tab.setAttribute('aria-selected', String(tab.dataset.view === id))
    if (location.hash !== `#${id}`) history.replaceState(null, '', `#${id}`)
  }
  for (const view of views) {
    view.element.setAttribute('role', 'tabpanel')
    container.append(view.element)
    const tab = h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${view.id}`, onclick: () => select(view.id) },
      view.title,
    )
    tab.dataset.view = view.id
    tab.setAttribute('aria-controls', view.element.id)
    view.element.setAttribute('aria-labelledby', tab.id)
    tabs.append(tab)
  }
  // Keyboard: arrow keys, Home and End move between tabs (WAI-ARIA tabs pattern); Tab reaches the panel.
  tabs.addEventListener('keydown', (event) => {
    const buttons = [...tabs.querySelectorAll('button')]
    const current = buttons.indexOf(document.activeElement as HTMLButtonElement)
    if (current === -1) return
    const next =
      event.key === 'ArrowRight'
        ? (current + 1) % buttons.length
        : event.key === 'ArrowLeft'
          ? (current - 1 + buttons.length) % buttons.length
          : event.key === 'Home'
            ? 0
            : event.key === 'End'
              ? buttons.length - 1
              : -1
    if (next === -1) return
    event.preventDefault()
    buttons[next]!.focus()
    buttons[next]!.click()
  })
  select(views.some((view) => `#${view.id}` === location.hash) ? location.hash.slice(1) : views[0]!.id)
  document.body.dataset.ready = 'true'
}

// Referenced so the bundle's tree shaking keeps the client entry even when no view is enabled.
void Client
main().catch((error: Error) => {
  document.getElementById('views')!.textContent = `The playground could not start: ${error.message}`
})
