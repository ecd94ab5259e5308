/**
 * Decoding of Stripe's v1 request encoding: `application/x-www-form-urlencoded` with bracket paths
 * (`metadata[order]=1`, `payment_method_types[0]=card`, `payment_method_types[]=card`), exactly what
 * the `stripe` SDK and `curl -d` send.
 */

/** A decoded form value: a string leaf or a nested object (arrays stay objects keyed "0", "1", …). */
export type FormValue = string | FormObject
/** A decoded form object. */
export type FormObject = { [key: string]: FormValue }

const segmentPattern = /\[([^\]]*)\]/g

/**
 * Decodes a form body (or query string) into a nested object.
 *
 * @example
 * ```ts
 * parseForm('metadata[a]=1&confirm=true') // { metadata: { a: '1' }, confirm: 'true' }
 * ```
 */
export function parseForm(body: string): FormObject {
  const root: FormObject = Object.create(null)
  // URLSearchParams drops one leading `?` (it parses query strings); a form body has none to drop, so
  // `?a=1` names the field `?a` as Rack does. (Found by the fuzz test: `?&` and `&?` parsed differently.)
  for (const [rawKey, value] of new URLSearchParams(body.startsWith('?') ? `&${body}` : body)) {
    const open = rawKey.indexOf('[')
    const head = open === -1 ? rawKey : rawKey.slice(0, open)
    const segments = [head]
    if (open !== -1)
      for (const match of rawKey.slice(open).matchAll(segmentPattern)) segments.push(match[1] ?? '')
    let node = root
    for (let index = 0; index < segments.length; index++) {
      let segment = segments[index] ?? ''
      const last = index === segments.length - 1
      // `a[]=x` appends, as Rack/qs do: the index is the current element count.
      if (segment === '' && index > 0) segment = String(Object.keys(node).length)
      if (last) {
        node[segment] = value
        break
      }
      const next = node[segment]
      if (typeof next === 'object') node = next
      else {
        const created: FormObject = Object.create(null)
        node[segment] = created
        node = created
      }
    }
  }
  return root
}

/**
 * A canonical string of decoded params (keys sorted), used to compare the params of two requests that
 * share an Idempotency-Key regardless of field order.
 *
 * @example
 * ```ts
 * fingerprint(parseForm('a=1&b=2')) === fingerprint(parseForm('b=2&a=1')) // true
 * ```
 */
export function fingerprint(value: FormValue): string {
  if (typeof value === 'string') return JSON.stringify(value)
  const keys = Object.keys(value).sort()
  return `{${keys.map((key) => `${JSON.stringify(key)}:${fingerprint(value[key] as FormValue)}`).join(',')}}`
}
