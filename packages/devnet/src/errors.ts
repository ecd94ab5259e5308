import { BaseError } from '@mppkit/core'

/**
 * An error raised by a local node or simulator of `@mppkit/devnet` (start failure, bad request to a
 * simulator helper). Simulators answer protocol errors in the rail's own wire format; this class is
 * for the TypeScript API.
 *
 * @example
 * ```ts
 * throw new DevnetError('anvil did not become ready in 10 s', { code: 'devnet_start_timeout' })
 * ```
 */
export class DevnetError extends BaseError {
  override name = 'DevnetError'
}
