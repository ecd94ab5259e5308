import { ConfigurationError } from './Errors.js'
import * as Method from './Method.js'

/**
 * An explicit, immutable list of methods keyed by `method/intent`. No global registry and no
 * side-effect registration: what you pass is what is offered.
 *
 * @example
 * ```ts
 * const registry = Registry.from([tempoCharge, stripeCharge])
 * registry.get('tempo', 'charge')
 * ```
 */
export type Registry<entry> = {
  get(method: string, intent: string): entry | undefined
  readonly entries: readonly entry[]
}

/**
 * Builds a registry; a duplicate `method/intent` is a `ConfigurationError` at creation.
 *
 * @example
 * ```ts
 * Registry.from([a, a]) // throws ConfigurationError: duplicate method tempo/charge
 * ```
 */
export function from<entry extends { definition: Method.Definition<any, any> }>(
  entries: readonly entry[],
): Registry<entry> {
  const map = new Map<string, entry>()
  for (const entry of entries) {
    if (!entry || typeof entry !== 'object' || !entry.definition)
      throw new ConfigurationError('not a payment method')
    const key = Method.key(entry.definition)
    if (map.has(key)) throw new ConfigurationError(`duplicate method ${key}`)
    map.set(key, entry)
  }
  return {
    get: (method, intent) => map.get(`${method}/${intent}`),
    entries: Object.freeze([...entries]),
  }
}
