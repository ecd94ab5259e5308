/**
 * The `Accept-Payment` request header: weighted `method/intent` ranges with wildcards.
 *
 * @see draft-httpauth-payment-00 §7.4 (Client Payment Preferences)
 */

/** One `method/intent;q=…` range. */
export type Range = { method: string; intent: string; q: number }

/**
 * The longest `Accept-Payment` value read, in characters (8 KiB). A longer value is treated as malformed
 * and ignored, so the server offers everything ("If `Accept-Payment` is malformed, servers MAY ignore
 * it"). A real client lists a handful of ranges in well under 1 KiB.
 */
export const maxHeaderLength = 8192

/**
 * The most ranges read from one `Accept-Payment` value. A value with more is treated as malformed and
 * ignored (as past {@link maxHeaderLength}); this also bounds the work of {@link select}, which weighs
 * every offer against every range.
 */
export const maxRanges = 64

/** Limits for {@link parse}; both default to the exported constants. */
export type Limits = { maxLength?: number; maxRanges?: number }

const SP = 0x20
const HTAB = 0x09
const isLower = (c: number) => c >= 0x61 && c <= 0x7a
const isDigit = (c: number) => c >= 0x30 && c <= 0x39
const isIntentChar = (c: number) => isLower(c) || isDigit(c) || (c >= 0x41 && c <= 0x5a) || c === 0x2d

/**
 * Parses an `Accept-Payment` value; returns `undefined` when it is absent, empty or malformed ("servers
 * MAY ignore it"), longer than {@link maxHeaderLength} or holding more than {@link maxRanges} ranges.
 * A single left-to-right scan: linear in the length of the value, whatever it holds.
 *
 * @example
 * ```ts
 * AcceptPayment.parse('tempo/*, stripe/charge;q=0.5')
 * ```
 * @see draft-httpauth-payment-00 §7.4: `payment-range = payment-token [ weight ]`, with `weight` and
 *   `qvalue` as in RFC 9110 §12.4.2
 */
export function parse(value: string | null | undefined, limits: Limits = {}): Range[] | undefined {
  if (typeof value !== 'string') return undefined
  const n = value.length
  if (n > (limits.maxLength ?? maxHeaderLength)) return undefined
  const most = limits.maxRanges ?? maxRanges
  const ranges: Range[] = []
  let i = 0
  const skipOws = () => {
    while (i < n && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB)) i++
  }
  // `*` or 1+ characters of the given class; returns the text read or undefined.
  const readPart = (isChar: (c: number) => boolean): string | undefined => {
    const start = i
    if (value.charCodeAt(i) === 0x2a /* * */) {
      i++
      return '*'
    }
    while (i < n && isChar(value.charCodeAt(i))) i++
    return i > start ? value.slice(start, i) : undefined
  }
  // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
  const readQ = (): number | undefined => {
    const start = i
    const lead = value.charCodeAt(i)
    if (lead !== 0x30 && lead !== 0x31) return undefined
    i++
    if (value.charCodeAt(i) === 0x2e /* . */) {
      i++
      for (let d = 0; d < 3 && i < n && isDigit(value.charCodeAt(i)); d++) {
        if (lead === 0x31 && value.charCodeAt(i) !== 0x30) return undefined
        i++
      }
    }
    return Number(value.slice(start, i))
  }
  while (i < n) {
    skipOws()
    if (i >= n) break
    if (value.charCodeAt(i) === 0x2c /* , */) {
      i++ // an empty list element
      continue
    }
    const method = readPart(isLower)
    if (method === undefined || value.charCodeAt(i) !== 0x2f /* / */) return undefined
    i++
    const intent = readPart(isIntentChar)
    if (intent === undefined) return undefined
    skipOws()
    let q = 1
    if (value.charCodeAt(i) === 0x3b /* ; */) {
      i++
      skipOws()
      if ((value.charCodeAt(i) | 0x20) !== 0x71 /* q or Q */) return undefined
      i++
      skipOws()
      if (value.charCodeAt(i) !== 0x3d /* = */) return undefined
      i++
      skipOws()
      const weight = readQ()
      if (weight === undefined) return undefined
      q = weight
      skipOws()
    }
    if (i < n && value.charCodeAt(i) !== 0x2c) return undefined
    i++
    if (ranges.length >= most) return undefined
    ranges.push({ method, intent, q })
  }
  return ranges.length ? ranges : undefined
}

/**
 * Formats ranges as an `Accept-Payment` value.
 *
 * @example
 * ```ts
 * AcceptPayment.format([{ method: 'tempo', intent: '*', q: 1 }]) // 'tempo/*'
 * ```
 */
export function format(ranges: readonly Range[]): string {
  return ranges
    .map((r) => `${r.method}/${r.intent}${r.q === 1 ? '' : `;q=${Number(r.q.toFixed(3))}`}`)
    .join(', ')
}

// The most specific matching range decides a challenge's weight: exact/exact beats exact/* beats */exact
// beats */*.
function weight(ranges: readonly Range[], method: string, intent: string): number | undefined {
  let best: { specificity: number; q: number } | undefined
  for (const range of ranges) {
    if (
      (range.method !== '*' && range.method !== method) ||
      (range.intent !== '*' && range.intent !== intent)
    )
      continue
    const specificity = (range.method === '*' ? 0 : 2) + (range.intent === '*' ? 0 : 1)
    if (best === undefined || specificity > best.specificity) best = { specificity, q: range.q }
  }
  return best?.q
}

/**
 * Filters and orders offers by the client's preferences: keep those matching a range with `q>0`,
 * order by descending q, keep server order on ties. With no header, or no match at all, the offers
 * come back unchanged (both allowed by the spec).
 *
 * @example
 * ```ts
 * AcceptPayment.select(offers, request.headers.get('accept-payment'))
 * ```
 * @see draft-httpauth-payment-00 §7.4: "Filter challenges to those matching at least one declared range
 *   with `q>0`; Order matching challenges by descending client `q` value; Preserve server preference
 *   order when multiple matches have the same `q`; Prefer the most specific matching range"
 */
export function select<offer extends { method: string; intent: string }>(
  offers: readonly offer[],
  header: string | null | undefined,
): offer[] {
  const ranges = parse(header)
  if (ranges === undefined) return [...offers]
  const ranked: { offer: offer; q: number; index: number }[] = []
  offers.forEach((offer, index) => {
    const q = weight(ranges, offer.method, offer.intent)
    if (q !== undefined && q > 0) ranked.push({ offer, q, index })
  })
  if (ranked.length === 0) return [...offers]
  ranked.sort((a, b) => b.q - a.q || a.index - b.index)
  return ranked.map((r) => r.offer)
}
