// The playground page: one view per rail and intent, plus the inspector.
import { Client } from '@mppkit/core/client'
import { inspectUrl, inspectValue, render } from '../../../../packages/core/src/internal/inspect.js'
import type { SolanaPageConfig } from '../server/solana.js'
import type { X402PageConfig } from '../server/x402.js'
import type { X402SolanaPageConfig } from '../server/x402-solana.js'
import { h } from './dom.js'
import type { LightningConfig } from './lightning.js'
import type { McpConfig } from './mcp.js'

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
  solana?: SolanaPageConfig
  x402?: X402PageConfig
  x402Solana?: X402SolanaPageConfig
  lightning?: LightningConfig
  mcp?: McpConfig
}

export type View = { id: string; title: string; element: HTMLElement }
/** A view whose code is a separate chunk, loaded when its tab first opens. */
export type LazyView = { id: string; title: string; load(): Promise<View> }

/** Tabs whose views come from one lazily imported module (loaded once, on the first tab opened). */
export function lazyViews(
  tabs: readonly [id: string, title: string][],
  load: () => Promise<View[]>,
): LazyView[] {
  let loaded: Promise<View[]> | undefined
  return tabs.map(([id, title]) => ({
    id,
    title,
    load: async () => {
      loaded ??= load()
      const view = (await loaded).find((candidate) => candidate.id === id)
      if (!view) throw new Error(`the ${title} view did not load`)
      return view
    },
  }))
}

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
  // One chunk per rail: a view's code (and its rail's client) loads when its tab first opens.
  const views: (View | LazyView)[] = [
    ...(config.tempo
      ? lazyViews(
          [
            ['tempo-charge', 'Tempo charge'],
            ['tempo-session', 'Tempo session'],
          ],
          () => import('./tempo.js').then((module) => module.tempoViews(config)),
        )
      : []),
    ...(config.stripe
      ? lazyViews([['stripe', 'Stripe charge']], () =>
          import('./stripe.js').then((module) => module.stripeView(config)),
        )
      : []),
    ...(config.solana
      ? lazyViews([['solana', 'Solana charge']], () =>
          import('./solana.js').then((module) => module.solanaViews(config)),
        )
      : []),
    ...(config.x402
      ? lazyViews(
          [
            ['x402-service', 'x402 service'],
            ['x402-client', 'x402 client'],
          ],
          () => import('./x402.js').then((module) => module.x402Views(config)),
        )
      : []),
    ...(config.x402Solana
      ? lazyViews(
          [
            ['x402-solana-service', 'x402 service (Solana)'],
            ['x402-solana-client', 'x402 client (Solana)'],
          ],
          () => import('./x402-solana.js').then((module) => module.x402SolanaViews(config)),
        )
      : []),
    ...(config.lightning
      ? lazyViews(
          [
            ['lightning-charge', 'Lightning charge'],
            ['lightning-session', 'Lightning session'],
          ],
          () => import('./lightning.js').then((module) => module.lightningViews(config)),
        )
      : []),
    ...(config.mcp && config.tempo
      ? lazyViews([['mcp', 'Paid MCP tool']], () =>
          import('./mcp.js').then((module) => module.mcpViews(config)),
        )
      : []),
    inspectorView(),
  ]
  const tabs = document.getElementById('tabs')!
  const container = document.getElementById('views')!
  container.replaceChildren()
  const panels = new Map<string, HTMLElement>()
  const loading = new Map<string, Promise<void>>()
  const open = (view: View | LazyView): Promise<void> => {
    if ('element' in view) return Promise.resolve()
    let done = loading.get(view.id)
    if (!done) {
      done = view.load().then(
        ({ element }) => {
          const placeholder = panels.get(view.id)!
          for (const name of ['role', 'aria-labelledby'])
            element.setAttribute(name, placeholder.getAttribute(name)!)
          element.hidden = placeholder.hidden
          placeholder.replaceWith(element)
          panels.set(view.id, element)
        },
        (error: Error) => {
          panels.get(view.id)!.textContent = `This view could not load: ${error.message}`
          loading.delete(view.id)
        },
      )
      loading.set(view.id, done)
    }
    return done
  }
  const select = (id: string) => {
    for (const [key, panel] of panels) panel.hidden = key !== id
    for (const tab of tabs.querySelectorAll('button'))
      tab.setAttribute('aria-selected', String(tab.dataset.view === id))
    if (location.hash !== `#${id}`) history.replaceState(null, '', `#${id}`)
    return open(views.find((view) => view.id === id)!)
  }
  for (const view of views) {
    const panel =
      'element' in view ? view.element : h('section', { id: `view-${view.id}` }, h('p', {}, 'Loading…'))
    panels.set(view.id, panel)
    panel.setAttribute('role', 'tabpanel')
    container.append(panel)
    const tab = h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${view.id}`, onclick: () => void select(view.id) },
      view.title,
    )
    tab.dataset.view = view.id
    tab.setAttribute('aria-controls', panel.id)
    panel.setAttribute('aria-labelledby', tab.id)
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
  await select(views.some((view) => `#${view.id}` === location.hash) ? location.hash.slice(1) : views[0]!.id)
  document.body.dataset.ready = 'true'
}

// Referenced so the bundle's tree shaking keeps the client entry even when no view is enabled.
void Client
main().catch((error: Error) => {
  document.getElementById('views')!.textContent = `The playground could not start: ${error.message}`
})
