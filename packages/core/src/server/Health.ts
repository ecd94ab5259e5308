import { randomBytes } from 'node:crypto'
import { StoreError } from '../Errors.js'
import type { Core } from './Core.js'
import { describe } from './Logger.js'

/** What {@link check} found: `ok` when the store and every method answered. */
export type Health = {
  ok: boolean
  /** `ok`, or a concise description of the store failure. */
  store: string
  /** Per `method/intent` with a `check()`: `ok`, or a concise description of its failure. */
  methods: Record<string, string>
}

/**
 * Checks readiness: a put/get/delete round trip through the store (under the server's key prefix) and
 * each method's optional `check()` (its rail reachable), all at once. Never throws.
 *
 * @example
 * ```ts
 * app.get('/ready', async () => { const health = await server.check(); return Response.json(health, { status: health.ok ? 200 : 503 }) })
 * ```
 */
export async function check(core: Core): Promise<Health> {
  const roundTrip = async () => {
    const key = `${core.prefix}check:${randomBytes(9).toString('base64url')}`
    const value = String(core.now())
    await core.store.set(key, value, 10_000)
    const read = await core.store.get(key)
    await core.store.delete(key)
    if (read !== value) throw new StoreError({ detail: 'The store did not return what was written.' })
  }
  const methods = core.registry.entries.filter((method) => method.check !== undefined)
  const [store, ...results] = await Promise.allSettled([
    roundTrip(),
    ...methods.map(async (method) => method.check!()),
  ])
  const health: Health = {
    ok: true,
    store: store!.status === 'fulfilled' ? 'ok' : describe(store!.reason, 'store'),
    methods: {},
  }
  if (store!.status === 'rejected') health.ok = false
  methods.forEach((method, i) => {
    const result = results[i]!
    const key = `${method.definition.name}/${method.definition.intent}`
    health.methods[key] = result.status === 'fulfilled' ? 'ok' : describe(result.reason, 'verify')
    if (result.status === 'rejected') health.ok = false
  })
  return health
}
