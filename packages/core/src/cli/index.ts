// `@mppkit/core/cli`: what every paying rail CLI (`@mppkit/method-<name>/cli`) shares, so that they all
// follow the same rules: unknown options exit 2, a default cap refuses rather than guesses, what is paid
// is shown (and asked at a terminal above a threshold unless --yes). No `node:` import: a rail's
// browser-safe code may import `describeError` from here.

export { describeError } from '../internal/describeError.js'
export {
  baseUnits,
  formatUnits,
  type OptionSpec,
  type Parsed,
  parseArgs,
  suggest,
  UsageError,
} from './args.js'
export {
  describePayment,
  type GuardHooks,
  guard,
  type Limits,
  type NamesPayee,
  printable,
  printableJson,
  type Units,
} from './guard.js'
export { askOnTerminal, type Io, processIo } from './io.js'
export {
  type Command,
  commandUrl,
  commonOptions,
  type Defaults,
  depositOptions,
  parseCommand,
  printResponse,
  runCommand,
} from './rail.js'
