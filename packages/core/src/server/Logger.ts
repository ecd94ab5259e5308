import type { Phase } from './Core.js'

/** Where the server writes its log lines: a function of one line, or `false` for none. */
export type Logger = false | ((line: string) => void)

/** A distinct failure is logged at most once per this many milliseconds; repeats are counted. */
export const repeatWindowMs = 60_000

const maxMessage = 160

/**
 * One concise line for an unexpected error: `mppkit <phase>: <Name>: <first line of the message>`. Only
 * the error's name and the first line of its message are kept (never its cause, stack or properties,
 * where a rail library might carry request data); the server never puts credentials in errors.
 *
 * @example
 * ```ts
 * describe(new TypeError('socket hang up'), 'settle') // 'mppkit settle: TypeError: socket hang up'
 * ```
 */
export function describe(error: unknown, phase: Phase): string {
  let name = 'Error'
  let message = ''
  if (error instanceof Error) {
    name = error.name
    message = error.message
  } else if (typeof error === 'string') message = error
  else message = typeof error
  const first = message.split('\n', 1)[0] ?? ''
  const short = first.length > maxMessage ? `${first.slice(0, maxMessage)}…` : first
  return `mppkit ${phase}: ${name}${short ? `: ${short}` : ''}`
}

/**
 * Returns the server's reporter for a logger: one line per distinct failure (same phase, name and
 * message) per {@link repeatWindowMs}, then a count of the repeats it held back. The default logger
 * writes to stderr.
 *
 * @example
 * ```ts
 * const log = Logger.create((line) => console.error(line), Date.now)
 * log(new Error('rpc down'), 'settle')
 * ```
 */
export function create(
  logger: Logger | undefined,
  now: () => number,
): (error: unknown, phase: Phase) => void {
  if (logger === false) return () => {}
  const write = logger ?? ((line: string) => process.stderr.write(`${line}\n`))
  const seen = new Map<string, { at: number; repeats: number }>()
  return (error, phase) => {
    const line = describe(error, phase)
    const at = now()
    const last = seen.get(line)
    if (last && at - last.at < repeatWindowMs) {
      last.repeats++
      return
    }
    // Bounded: distinct lines are few in practice; forget them all past a thousand.
    if (seen.size >= 1000) seen.clear()
    seen.set(line, { at, repeats: 0 })
    try {
      write(last && last.repeats > 0 ? `${line} (and ${last.repeats} more like it)` : line)
    } catch {}
  }
}
