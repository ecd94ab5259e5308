#!/usr/bin/env node
import { inspectUrl, inspectValue, render } from '../internal/inspect.js'

const usage = `mppkit — Machine Payments Protocol toolkit

Usage:
  mppkit inspect <header value | URL> [--reveal]   decode a challenge, credential or receipt,
                                                   or fetch a URL and show its 402 offers
  mppkit pay <url> [options]                       pay a URL (needs a method package, e.g. @mppkit/method-tempo)

Run 'mppkit pay --help' for payment options.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  const reveal = rest.includes('--reveal')
  const args = rest.filter((a) => a !== '--reveal')
  if (command === 'inspect') {
    const target = args.join(' ')
    if (!target) {
      process.stderr.write(`${usage}\n`)
      return 2
    }
    if (/^https?:\/\//i.test(target)) {
      try {
        const { text, ok } = await inspectUrl(target, { reveal })
        process.stdout.write(`${text}\n`)
        return ok ? 0 : 1
      } catch (error) {
        process.stderr.write(`mppkit: could not fetch ${target}: ${(error as Error).message}\n`)
        return 1
      }
    }
    const inspection = inspectValue(target)
    process.stdout.write(`${render(inspection, { reveal })}\n`)
    return inspection.kind === 'unknown' ? 1 : 0
  }
  if (command === 'pay') {
    // Rails live in their own packages; the pay command is provided by the first one installed.
    const candidates = ['@mppkit/method-tempo/cli']
    for (const name of candidates) {
      try {
        const module = (await import(name)) as { pay: (argv: string[]) => Promise<number> }
        return await module.pay(args)
      } catch (error) {
        if (
          (error as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND' &&
          (error as { code?: string }).code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED'
        )
          throw error
      }
    }
    process.stderr.write(
      'mppkit pay: no payment method package is installed (npm install @mppkit/method-tempo)\n',
    )
    return 2
  }
  process.stdout.write(`${usage}\n`)
  return command === undefined || command === '--help' || command === 'help' ? 0 : 2
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.stderr.write(`mppkit: ${(error as Error).message}\n`)
    process.exitCode = 1
  },
)
