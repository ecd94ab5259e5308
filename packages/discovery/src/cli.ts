import { DiscoveryError, formatInspection, type InspectOptions, inspect } from './Inspect.js'

/** Where the CLI writes; replaced in tests. */
export type Io = { out(line: string): void; err(line: string): void }

const usage = 'usage: mppkit-discovery inspect <origin>'

/**
 * `mppkit-discovery inspect <origin>`: fetches the origin's discovery document, validates it and lists
 * every paid operation with its offers. Exit code 0 when valid, 1 when invalid, 2 when it could not be
 * read (a clear one-line error, never a stack trace).
 *
 * @example
 * ```ts
 * process.exitCode = await main(['inspect', 'https://api.example.com'])
 * ```
 * @see draft-payment-discovery-00 §OpenAPI Discovery
 */
export async function main(
  argv: readonly string[],
  io: Io = { out: (line) => console.log(line), err: (line) => console.error(line) },
  options: InspectOptions = {},
): Promise<number> {
  const [command, origin] = argv
  if (command !== 'inspect' || origin === undefined) {
    io.err(usage)
    return 2
  }
  try {
    const inspection = await inspect(origin, options)
    io.out(formatInspection(inspection))
    return inspection.valid ? 0 : 1
  } catch (error) {
    if (error instanceof DiscoveryError) {
      io.err(`mppkit-discovery: ${error.message}`)
      return 2
    }
    throw error
  }
}
