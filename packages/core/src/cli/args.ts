import { ConfigurationError } from '../Errors.js'
import { editDistance } from '../internal/editDistance.js'

/** A command line the CLI cannot run: printed with the usage, exit code 2. */
export class UsageError extends ConfigurationError {
  override name = 'UsageError'
}

/** How each option is spelled and whether it takes a value. */
export type OptionSpec = Readonly<Record<string, { name: string; value: boolean; repeat?: boolean }>>

/** Parsed options: the last value of each, every value of a repeatable one, and the positionals. */
export type Parsed = {
  values: Map<string, string>
  lists: Map<string, string[]>
  switches: Set<string>
  positionals: string[]
}

const squash = (flag: string) => flag.replace(/^-+/, '').replace(/[-_]/g, '').toLowerCase()

/**
 * The known option closest to a misspelt one (`--maxamount` → `--max-amount`), if any is close.
 *
 * @example
 * ```ts
 * suggest('--maxamount', { '--max-amount': { name: 'maxAmount', value: true } }) // '--max-amount'
 * ```
 */
export function suggest(flag: string, spec: OptionSpec): string | undefined {
  const wanted = squash(flag.split('=')[0]!).slice(0, 64)
  let best: { flag: string; score: number } | undefined
  for (const known of Object.keys(spec)) {
    if (!known.startsWith('--')) continue
    const score = editDistance(wanted, squash(known))
    if (score <= 2 && (!best || score < best.score)) best = { flag: known, score }
  }
  return best?.flag
}

// Flags come from a person's command line, but are echoed back: printable and bounded.
const shown = (flag: string) => JSON.stringify(flag.length > 64 ? `${flag.slice(0, 64)}…` : flag).slice(1, -1)
// An unknown option as typed, when it looks like an option name; anything else (a key pasted after
// `--`) is not echoed.
const shownFlag = (flag: string) =>
  /^--?[A-Za-z][\w-]{0,40}$/.test(flag) && !/[0-9a-fA-F]{32}/.test(flag)
    ? shown(flag)
    : `(${flag.length} characters, not shown)`

/**
 * Parses `argv` against `spec`: `--flag value`, `--flag=value`, switches, repeatable options and
 * positionals (`--` ends the options). An unknown option, or an option missing its value, is a
 * {@link UsageError}: a typo must never be ignored (`--maxamount 100` once paid without any cap).
 *
 * @example
 * ```ts
 * parseArgs(['https://x', '--max-amount', '100'], { '--max-amount': { name: 'maxAmount', value: true } })
 * ```
 */
export function parseArgs(argv: readonly string[], spec: OptionSpec): Parsed {
  const parsed: Parsed = { values: new Map(), lists: new Map(), switches: new Set(), positionals: [] }
  let onlyPositionals = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (onlyPositionals || arg === '-' || !arg.startsWith('-')) {
      parsed.positionals.push(arg)
      continue
    }
    if (arg === '--') {
      onlyPositionals = true
      continue
    }
    const equals = arg.startsWith('--') ? arg.indexOf('=') : -1
    const flag = equals === -1 ? arg : arg.slice(0, equals)
    const option = Object.hasOwn(spec, flag) ? spec[flag] : undefined
    if (!option) {
      const near = suggest(flag, spec)
      throw new UsageError(`unknown option ${shownFlag(flag)}${near ? ` (did you mean ${near}?)` : ''}`)
    }
    if (!option.value) {
      if (equals !== -1) throw new UsageError(`${flag} takes no value`)
      parsed.switches.add(option.name)
      continue
    }
    const value = equals !== -1 ? arg.slice(equals + 1) : argv[++i]
    if (value === undefined) throw new UsageError(`${flag} needs a value`)
    if (option.repeat) parsed.lists.set(option.name, [...(parsed.lists.get(option.name) ?? []), value])
    else parsed.values.set(option.name, value)
  }
  return parsed
}

/**
 * A non-negative base-unit integer given on the command line, or a {@link UsageError} naming the flag.
 *
 * @example
 * ```ts
 * baseUnits('--max-amount', '1000000') // 1000000n
 * ```
 */
export function baseUnits(flag: string, value: string | undefined): bigint | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,78}$/.test(value))
    throw new UsageError(`${flag} takes a whole number of base units (e.g. 1000000), got "${shown(value)}"`)
  return BigInt(value)
}

/**
 * Formats base units in display units: `formatUnits(1234n, 6)` is `0.001234`.
 *
 * @example
 * ```ts
 * formatUnits(5_000_000_000n, 6) // '5,000'
 * ```
 */
export function formatUnits(amount: bigint, decimals: number): string {
  const negative = amount < 0n
  const digits = (negative ? -amount : amount).toString().padStart(decimals + 1, '0')
  const whole = digits.slice(0, digits.length - decimals)
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '')
  return `${negative ? '-' : ''}${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${fraction ? `.${fraction}` : ''}`
}
