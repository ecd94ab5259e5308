// Tiny DOM helpers: the page is plain TypeScript and DOM, no framework.
type Child = Node | string | null | undefined | false
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | ((event: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === 'function') element.addEventListener(name.replace(/^on/, ''), value)
    else if (value === true) element.setAttribute(name, '')
    else if (value !== false) element.setAttribute(name, value)
  }
  for (const child of children) if (child) element.append(child)
  return element
}

/** Pretty JSON (bigints as strings). */
export const pretty = (value: unknown) =>
  JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v), 2)

/** Base units → display units (`1000`, 6 → `0.001`). */
export function display(amount: string | bigint, decimals: number, minDecimals = 0): string {
  const value = BigInt(amount)
  const negative = value < 0n
  const digits = (negative ? -value : value).toString().padStart(decimals + 1, '0')
  const whole = digits.slice(0, digits.length - decimals)
  const all = digits.slice(digits.length - decimals)
  const fraction = all.replace(/0+$/, '').padEnd(Math.min(minDecimals, decimals), '0')
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`
}

/** Display units → base units (`0.001`, 6 → 1000n). */
export function baseUnits(text: string, decimals: number): bigint {
  const match = /^\s*(\d*)(?:\.(\d*))?\s*$/.exec(text)
  if (!match || (match[1] === '' && !match[2])) throw new Error(`not an amount: ${text}`)
  const fraction = (match[2] ?? '').padEnd(decimals, '0')
  if (fraction.length > decimals) throw new Error(`${text} has more than ${decimals} decimals`)
  return BigInt(match[1] || '0') * 10n ** BigInt(decimals) + BigInt(fraction || '0')
}

export function setStatus(element: HTMLElement, text: string, tone: 'ok' | 'bad' | '' = '') {
  element.textContent = text
  element.className = `status ${tone}`
}

/** A problem body (RFC 9457) as an object, or undefined when the body is not a JSON object. */
export function problemOf(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body)
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/**
 * The status line of a payment that threw: refused by the spend policy, an outcome not known (the rail or
 * the request failed after the credential left: `PaymentFailedError.mayHaveSettled`; the client keeps it
 * booked, so it counts as spent), or failed. One line: never a stack, never `[object Object]`.
 */
export function failureText(error: unknown): string {
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: unknown
    message?: unknown
    mayHaveSettled?: unknown
  }
  const message =
    typeof e.message === 'string' && e.message.trim()
      ? e.message.trim().split('\n')[0]!
      : typeof error === 'string' && error
        ? error
        : 'an unexpected error (details in the browser console)'
  if (e.name === 'PolicyError') return `Refused by policy: ${message}`
  if (e.mayHaveSettled === true)
    return `Outcome unknown: ${message}${/may have gone through/.test(message) ? '' : '; the payment may have gone through: check before paying again'} (it stays booked against the budget)`
  return `Failed: ${message}`
}

/**
 * The "Apply policy" button of a view: `renew` builds a new paying client from the policy inputs (so
 * spent starts again at 0); the status line says it worked, or why the policy is refused.
 */
export function applyPolicyButton(
  id: string,
  status: HTMLElement,
  renew: () => unknown,
  applied: () => string = () => 'Policy applied (a new client: spent resets to 0).',
): HTMLButtonElement {
  return h(
    'button',
    {
      type: 'button',
      id,
      onclick: async () => {
        try {
          await renew()
          setStatus(status, applied())
        } catch (error) {
          setStatus(status, `Bad policy: ${failureText(error).replace(/^Failed: /, '')}`, 'bad')
        }
      },
    },
    'Apply policy',
  )
}
