// The argument parser of every paying rail CLI lives in `@mppkit/core/cli` (one copy, one set of rules).
export {
  baseUnits,
  formatUnits,
  type OptionSpec,
  type Parsed,
  parseArgs,
  suggest,
  UsageError,
} from '@mppkit/core/cli'
