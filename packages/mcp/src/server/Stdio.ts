import { type Readable, Transform } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { liftMeta } from './Payments.js'

/** The SDK's stdio read buffer limit (`STDIO_DEFAULT_MAX_BUFFER_SIZE`): a longer line is passed as is. */
const maxLine = 10 * 1024 * 1024

/**
 * The stdin of a stdio MCP server with every message's root-level `_meta` lifted into `params._meta`
 * ({@link liftMeta}): the SDK's stdio transport validates each line before the payments transport sees
 * it, and drops a message with a root `_meta`. "Servers MUST check both locations for `_meta` and MUST
 * NOT require clients to use a specific placement" (draft-payment-transport-mcp-00 §Metadata Placement).
 * A line that is not JSON, or longer than the SDK accepts, is passed on unchanged (the SDK refuses it).
 *
 * @example
 * ```ts
 * await payments.connect(mcp, new StdioServerTransport(liftMetaLines(process.stdin)))
 * ```
 */
export function liftMetaLines(input: Readable): Readable {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  const lift = (line: string): string => {
    try {
      const message: unknown = JSON.parse(line)
      const lifted = liftMeta(message)
      return lifted === message ? line : JSON.stringify(lifted)
    } catch {
      return line
    }
  }
  const output = new Transform({
    transform(chunk: Buffer | string, _encoding, done) {
      pending += typeof chunk === 'string' ? chunk : decoder.write(chunk)
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      let out = lines.map((line) => `${lift(line.replace(/\r$/, ''))}\n`).join('')
      if (pending.length > maxLine) {
        out += pending
        pending = ''
      }
      done(null, out)
    },
    flush(done) {
      pending += decoder.end()
      done(null, pending)
    },
  })
  input.on('error', (error) => output.destroy(error))
  return input.pipe(output)
}
