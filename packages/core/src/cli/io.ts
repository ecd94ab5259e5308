/** Where a paying CLI writes, and how it asks a question (`confirm` is absent when nobody can answer). */
export type Io = {
  stdout: (text: string) => void
  stderr: (text: string) => void
  confirm?: ((question: string) => Promise<boolean>) | undefined
}

/**
 * Asks a yes/no question on the terminal (stderr), reading one line of stdin; anything but y/yes is no,
 * and so is the end of input. Uses the `process` global only (no `node:` import), so that this entry
 * stays importable from code that also runs in browsers.
 *
 * @example
 * ```ts
 * if (await askOnTerminal('pay 0.50 USD')) pay()
 * ```
 */
export function askOnTerminal(question: string): Promise<boolean> {
  const stdin = process.stdin
  process.stderr.write(`${question}? [y/N] `)
  return new Promise((resolve) => {
    let line = ''
    const done = (answer: boolean) => {
      stdin.off('data', onData)
      stdin.off('end', onEnd)
      stdin.pause()
      resolve(answer)
    }
    const onData = (chunk: Buffer | string) => {
      line += String(chunk)
      const end = line.indexOf('\n')
      if (end !== -1) done(/^y(es)?$/i.test(line.slice(0, end).trim()))
      else if (line.length > 256) done(false)
    }
    const onEnd = () => done(/^y(es)?$/i.test(line.trim()))
    stdin.on('data', onData)
    stdin.once('end', onEnd)
    stdin.resume()
  })
}

/**
 * The process's streams; `confirm` only when stdin is a terminal (a pipe or CI never answers).
 *
 * @example
 * ```ts
 * process.exitCode = await pay(process.argv.slice(2), processIo())
 * ```
 */
export function processIo(): Io {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    confirm: process.stdin.isTTY ? askOnTerminal : undefined,
  }
}
