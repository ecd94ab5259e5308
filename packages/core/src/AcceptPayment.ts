/**
 * The `Accept-Payment` request header: weighted `method/intent` ranges with wildcards.
 *
 * @see draft-httpauth-payment-00 §7.4 (Client Payment Preferences)
 */

/** One `method/intent;q=…` range. */
export type Range = { method: string; intent: string; q: number }

const rangePattern =
  /^\s*([a-z]+|\*)\/([A-Za-z0-9-]+|\*)\s*(?:;\s*q\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?))?\s*$/

/**
 * Parses an `Accept-Payment` value; returns `undefined` when it is malformed ("servers MAY ignore it").
 *
 * @example
 * ```ts
 * AcceptPayment.parse('tempo/*, stripe/charge;q=0.5')
 * ```
 */
export function parse(value: string | null | undefined): Range[] | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined
  const ranges: Range[] = []
  for (const part of value.split(',')) {
    if (part.trim() === '') continue
    const match = rangePattern.exec(part)
    if (!match) return undefined
    ranges.push({ method: match[1]!, intent: match[2]!, q: match[3] === undefined ? 1 : Number(match[3]) })
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
