#!/usr/bin/env node
import { describeError } from '../internal/describeError.js'
import { inspectOrigin, inspectUrl, inspectValue, isOrigin, render } from '../internal/inspect.js'
import { closeCommand, payCommand, reclaimCommand } from '../internal/railCli.js'

const usage = `mppkit — Machine Payments Protocol toolkit

Usage:
  mppkit inspect <header value | URL> [--reveal]   decode a challenge, credential or receipt,
                                                   or fetch a URL and show its 402 offers
  mppkit inspect <origin>                          read the origin's discovery document (/openapi.json),
                                                   validate it and list every paid operation and offer
                                                   (needs @mppkit/discovery)
  mppkit pay <url> [--rail <name>] [options]       pay a URL with the first offered method whose package
                                                   is installed (e.g. @mppkit/method-tempo)
  mppkit reclaim --channel <0x…> --escrow <0x…>    take a Tempo session deposit back without the
                                                   server (forced close; needs @mppkit/method-tempo)
  mppkit reclaim --all | --list [--escrow <0x…>]   the same for, or a list of, every channel of the
                                                   payer that still holds a deposit
  mppkit close --channel-file <path> [<url>]       close the Tempo session channels saved by mppkit pay
                                                   --channel-file … --keep-open, without paying again
  mppkit close --session-file <path> [<url>]       close the Lightning sessions saved by mppkit pay
                                                   --session-file … --keep-open (refund to the payer's
                                                   node; needs @mppkit/method-lightning)

Run 'mppkit pay --help' for payment options, 'mppkit reclaim --help' and 'mppkit close --help' for theirs. Exit codes: 0 ok, 1 failed, 2 usage error.`

async function inspect(args: string[]): Promise<number> {
  let reveal = false
  const parts: string[] = []
  for (const arg of args) {
    if (arg === '--reveal') reveal = true
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage}\n`)
      return 0
    } else if (/^--?[a-z]/i.test(arg)) {
      process.stderr.write(`mppkit inspect: unknown option ${arg}\n\n${usage}\n`)
      return 2
    } else parts.push(arg)
  }
  const target = parts.join(' ')
  if (!target) {
    process.stderr.write(`mppkit inspect: missing <header value | URL>\n\n${usage}\n`)
    return 2
  }
  // A URL carrying credentials (`https://user:secret@host`) is refused before anything is sent or
  // printed: the error lines below echo the target.
  if (/^https?:\/\//i.test(target) && hasCredentials(target)) {
    process.stderr.write(
      'mppkit inspect: a URL with credentials (user:password@) is refused; nothing was sent\n',
    )
    return 2
  }
  if (/^https?:\/\//i.test(target) && isOrigin(target)) {
    try {
      const { stdout, stderr, code } = await inspectOrigin(target, { reveal })
      process.stderr.write(stderr)
      if (stdout) process.stdout.write(`${stdout}\n`)
      return code
    } catch (error) {
      process.stderr.write(`mppkit inspect: could not inspect ${target}: ${describeError(error)}\n`)
      return 1
    }
  }
  if (/^https?:\/\//i.test(target)) {
    try {
      const { text, ok } = await inspectUrl(target, { reveal })
      process.stdout.write(`${text}\n`)
      return ok ? 0 : 1
    } catch (error) {
      process.stderr.write(`mppkit inspect: could not fetch ${target}: ${describeError(error)}\n`)
      return 1
    }
  }
  const inspection = inspectValue(target)
  process.stdout.write(`${render(inspection, { reveal })}\n`)
  return inspection.kind === 'unknown' ? 1 : 0
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === 'inspect') return inspect(rest)
  if (command === 'pay') return payCommand(rest)
  if (command === 'reclaim') return reclaimCommand(rest)
  if (command === 'close') return closeCommand(rest)
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${usage}\n`)
    return 0
  }
  // A word is echoed (a typo such as `pai`); anything else (a key pasted first) is not.
  const named = /^[a-z][a-z-]{0,20}$/.test(command) ? command : `(${command.length} characters, not shown)`
  process.stderr.write(`mppkit: unknown command ${named}\n\n${usage}\n`)
  return 2
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.stderr.write(`mppkit: ${describeError(error)}\n`)
    process.exitCode = 1
  },
)

/** True when a URL names a user or password (`https://user:secret@host`). */
function hasCredentials(url: string): boolean {
  try {
    const parsed = new URL(url)
    return parsed.username !== '' || parsed.password !== ''
  } catch {
    return false
  }
}
