import { type DevnetInfo, type StartDevnetOptions, startDevnet } from './devnet.js'
import { DevnetError } from './errors.js'

/**
 * The key under which {@link devnetGlobalSetup} provides the devnet's info to tests
 * (`inject('mppkitDevnet')`).
 *
 * @example
 * ```ts
 * const info = inject(devnetProvideKey)
 * ```
 */
export const devnetProvideKey = 'mppkitDevnet'

/**
 * The environment variable {@link devnetGlobalSetup} fills with the devnet's info as JSON, for code
 * that cannot call `inject` (child processes, examples).
 *
 * @example
 * ```ts
 * const info = JSON.parse(process.env[devnetInfoEnvironmentVariable]!)
 * ```
 */
export const devnetInfoEnvironmentVariable = 'MPPKIT_DEVNET_INFO'

/**
 * Options of {@link devnetGlobalSetup}: those of `startDevnet`.
 *
 * @example
 * ```ts
 * const options: DevnetGlobalSetupOptions = { rails: ['tempo'] }
 * ```
 */
export type DevnetGlobalSetupOptions = StartDevnetOptions

// Structural: vitest's TestProject (vitest ≥ 3) has `provide`; no type dependency on vitest.
type ProvidingProject = { provide(key: string, value: unknown): void }

/**
 * A vitest `globalSetup` function: starts the devnet once for the whole run, provides its info to
 * every test file (`inject('mppkitDevnet')`) and as JSON in `MPPKIT_DEVNET_INFO`, and returns the
 * teardown that stops it.
 *
 * @example
 * ```ts
 * // vitest.global-setup.ts, named in vitest.config.ts `test.globalSetup`
 * import { devnetGlobalSetup } from '@mppkit/devnet'
 * export default (project) => devnetGlobalSetup(project, { rails: ['tempo', 'stripe'] })
 *
 * // in a test file
 * import { inject } from 'vitest'
 * const devnet = inject('mppkitDevnet')
 * ```
 */
export async function devnetGlobalSetup(
  project?: ProvidingProject,
  options: DevnetGlobalSetupOptions = {},
): Promise<() => Promise<void>> {
  const devnet = await startDevnet(options)
  project?.provide(devnetProvideKey, devnet.info)
  const previous = process.env[devnetInfoEnvironmentVariable]
  process.env[devnetInfoEnvironmentVariable] = JSON.stringify(devnet.info)
  return async () => {
    if (previous === undefined) delete process.env[devnetInfoEnvironmentVariable]
    else process.env[devnetInfoEnvironmentVariable] = previous
    await devnet.stop()
  }
}

/**
 * Reads the devnet info a global setup published in `MPPKIT_DEVNET_INFO` (or `undefined`), for test
 * files and child processes that prefer the environment to `inject`.
 *
 * @example
 * ```ts
 * const info = readDevnetInfo()
 * if (!info?.tempo) console.warn('[skip] no devnet global setup')
 * ```
 */
export function readDevnetInfo(
  env: Readonly<Record<string, string | undefined>> = process.env,
): DevnetInfo | undefined {
  const text = env[devnetInfoEnvironmentVariable]
  if (text === undefined || text === '') return undefined
  try {
    return JSON.parse(text) as DevnetInfo
  } catch (error) {
    throw new DevnetError(`${devnetInfoEnvironmentVariable} is not JSON`, {
      code: 'devnet_configuration',
      cause: error,
    })
  }
}
