import type * as Net from 'node:net'
import type * as Tls from 'node:tls'

/** One HTTP POST of a JSON body: the status and the body text, or a thrown transport failure. */
export type Post = (body: string, timeout: number) => Promise<{ status: number; text: string }>

/** The socket modules this client connects with (loaded lazily by the caller, on Node only). */
export type SocketModules = { net: typeof Net; tls: typeof Tls }

/** Options of {@link http1Post}. */
export type Http1Options = {
  /** Largest answer body read; a larger one fails the call (`ANSWER_TOO_LARGE`). */
  maxAnswerBytes: number
  /** Idle kept-alive connections held for reuse (more are closed when they come back). */
  maxIdle?: number
  /** Extra `tls.connect` options for `https:` URLs (a test's own CA, say). */
  tls?: Tls.ConnectionOptions
}

/** A transport failure of {@link http1Post}, with a `code` as node:net's errors have. */
export class Http1Error extends Error {
  override name = 'Http1Error'
  /** True when the connection closed before any byte of the answer (a reused one may be retried). */
  silent = false
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Codes of a connection that failed before the request was written (nothing reached the node). */
const refusedAtConnect = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'])

/** Largest response head (status line and fields) accepted. */
const maxHeadBytes = 64 * 1024

/**
 * A keep-alive HTTP/1.1 client that does one thing: POST a JSON body to one URL and read the answer.
 * A JSON-RPC call through node:http's `ClientRequest` and `IncomingMessage` costs about 0.1 ms of CPU
 * more than the bytes themselves (measured against a local node); a payment verification that waits on
 * one `getTransaction` spends most of its own time there. This client writes the request in one write
 * and parses the answer in place: `Content-Length`, `chunked` or close-delimited bodies (RFC 9112 §6.3),
 * `1xx` interim answers skipped, `Connection: close` and the `Keep-Alive: timeout` hint honoured. A
 * kept-alive connection that the node closed while idle fails on reuse before any answer byte: that
 * call is sent once more on a new connection (every JSON-RPC call made here is safe to repeat).
 *
 * @example
 * ```ts
 * const post = http1Post(new URL('http://127.0.0.1:8899'), { net, tls }, { maxAnswerBytes: 1 << 24 })
 * const { status, text } = await post('{"jsonrpc":"2.0","id":1,"method":"getSlot"}', 10_000)
 * ```
 */
export function http1Post(url: URL, modules: SocketModules, options: Http1Options): Post {
  const secure = url.protocol === 'https:'
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const port = Number(url.port || (secure ? 443 : 80))
  const maxIdle = options.maxIdle ?? 8
  // "A client MUST send a Host header field in all HTTP/1.1 request messages." (RFC 9112 §3.2)
  let fixed = `POST ${url.pathname || '/'}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n`
  if (url.username || url.password) {
    const user = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
    fixed += `Authorization: Basic ${Buffer.from(user, 'utf8').toString('base64')}\r\n`
  }
  const idle: Connection[] = []

  const open = (): Connection => {
    const socket = secure
      ? modules.tls.connect({
          host,
          port,
          ...(modules.net.isIP(host) ? {} : { servername: host }),
          ALPNProtocols: ['http/1.1'],
          ...options.tls,
        })
      : modules.net.connect({ host, port })
    socket.setNoDelay(true)
    return new Connection(socket, options.maxAnswerBytes, (connection) => {
      const at = idle.indexOf(connection)
      if (at >= 0) idle.splice(at, 1)
    })
  }

  const release = (connection: Connection) => {
    if (!connection.reusable || idle.length >= maxIdle) connection.destroy()
    else {
      connection.socket.unref()
      idle.push(connection)
    }
  }

  const once = (connection: Connection, request: string, timeout: number) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      connection.send(request, timeout, (error, answer) => {
        if (error) reject(error)
        else {
          release(connection)
          resolve(answer!)
        }
      })
    })

  return async (body, timeout) => {
    const request = `${fixed}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    let reused = idle.pop()
    while (reused && reused.idleUntil <= Date.now()) {
      reused.destroy()
      reused = idle.pop()
    }
    if (!reused) return once(open(), request, timeout)
    reused.socket.ref()
    try {
      return await once(reused, request, timeout)
    } catch (error) {
      // Closed while idle (nothing of an answer arrived): send once more on a new connection.
      if (!(error instanceof Http1Error && error.silent)) throw error
      try {
        return await once(open(), request, timeout)
      } catch (again) {
        // The first attempt was written, and may have reached the node before the connection closed:
        // a refusal of the second one must not read as "never sent" (its code would say so).
        throw again instanceof Http1Error && refusedAtConnect.has(again.code) ? error : again
      }
    }
  }
}

type Done = (error: Http1Error | undefined, answer?: { status: number; text: string }) => void

/** One connection: at most one call in flight, its answer parsed as bytes arrive. */
class Connection {
  reusable = true
  /** When the node's Keep-Alive hint says it may close this connection (ms since the epoch). */
  idleUntil = Number.POSITIVE_INFINITY
  #done: Done | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #received = false
  #buffer: Buffer | undefined
  // Parsed head of the answer in progress.
  #status = 0
  #length = -1 // Content-Length, or -1
  #chunked = false
  #untilClose = false
  #body: Buffer[] = []
  #bodyBytes = 0
  #headDone = false
  // Chunked decoding: bytes left in the current chunk, or -1 (a size line next), -2 (trailer lines
  // until the empty one), -3 (the CRLF after a chunk's data).
  #chunkLeft = -1

  constructor(
    readonly socket: Net.Socket,
    readonly maxAnswerBytes: number,
    onGone: (connection: Connection) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.#data(chunk))
    socket.on('error', (error: Error & { code?: string }) => {
      this.#fail(new Http1Error(error.code ?? 'ECONNRESET', error.message))
    })
    socket.on('close', () => {
      this.reusable = false
      onGone(this)
      if (this.#done && this.#headDone && this.#untilClose) return this.#finish()
      this.#fail(new Http1Error('ECONNRESET', 'the connection closed before the answer was complete'))
    })
  }

  send(request: string, timeout: number, done: Done): void {
    this.#done = done
    this.#received = false
    this.#timer = setTimeout(() => {
      this.#fail(new Http1Error('TIMEOUT', 'timeout'))
    }, timeout)
    this.socket.write(request)
  }

  destroy(): void {
    this.reusable = false
    this.socket.destroy()
  }

  #fail(error: Http1Error): void {
    const done = this.#done
    this.destroy()
    if (!done) return
    this.#done = undefined
    clearTimeout(this.#timer)
    // A reused connection that closed before any byte of the answer: the caller may send again.
    if (!this.#received && error.code !== 'TIMEOUT') error.silent = true
    done(error)
  }

  #data(chunk: Buffer): void {
    if (!this.#done) {
      // Bytes nobody asked for: the connection is out of step; never reuse it.
      this.destroy()
      return
    }
    this.#received = true
    let input = this.#buffer ? Buffer.concat([this.#buffer, chunk]) : chunk
    this.#buffer = undefined
    try {
      while (!this.#headDone) {
        const end = input.indexOf('\r\n\r\n')
        if (end > maxHeadBytes || (end < 0 && input.length > maxHeadBytes))
          throw new Http1Error('BAD_ANSWER', 'answer head too large')
        if (end < 0) {
          this.#buffer = input
          return
        }
        this.#head(input.toString('latin1', 0, end))
        input = input.subarray(end + 4)
      }
      input = this.#chunked ? this.#chunks(input) : this.#fixed(input)
      if (this.#complete()) {
        if (input.length > 0) this.reusable = false // bytes past the answer: out of step
        this.#finish()
      }
    } catch (error) {
      this.#fail(error instanceof Http1Error ? error : new Http1Error('BAD_ANSWER', 'unreadable answer'))
    }
  }

  /** Parses a response head; an interim (1xx) one is skipped. */
  #head(text: string): void {
    const lines = text.split('\r\n')
    const status = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: |$)/.exec(lines[0]!)
    if (!status) throw new Http1Error('BAD_ANSWER', 'not an HTTP/1.x answer')
    const code = Number(status[2])
    // "A client MUST be able to parse one or more 1xx responses received prior to a final response"
    // (RFC 9110 §15.2); 101 would switch protocols, which this client never asks for.
    if (code < 200) {
      if (code === 101) throw new Http1Error('BAD_ANSWER', 'unexpected protocol switch')
      return
    }
    let keepAlive = status[1] === '1'
    let length: number | undefined
    let transferEncoding: string | undefined
    let keepFor: number | undefined
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!
      const colon = line.indexOf(':')
      if (colon <= 0) throw new Http1Error('BAD_ANSWER', 'malformed header field')
      const name = line.slice(0, colon).toLowerCase()
      const value = line.slice(colon + 1).trim()
      if (name === 'content-length') {
        // Repeated equal values are allowed; differing ones are an unrecoverable framing error (§6.3).
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value)))
          throw new Http1Error('BAD_ANSWER', 'invalid Content-Length')
        length = Number(value)
      } else if (name === 'transfer-encoding') {
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`
      } else if (name === 'keep-alive') {
        // The node's idle timeout hint: reuse the connection only well before the node closes it.
        const hint = /(?:^|[\s,])timeout=(\d+)/i.exec(value)
        if (hint) keepFor = Number(hint[1]) * 1000 - 1000
      } else if (name === 'connection') {
        const tokens = value.toLowerCase()
        if (/(^|[\s,])close($|[\s,])/.test(tokens)) keepAlive = false
        else if (/(^|[\s,])keep-alive($|[\s,])/.test(tokens)) keepAlive = true
      }
    }
    this.#headDone = true
    this.#status = code
    if (!keepAlive || (keepFor !== undefined && keepFor <= 0)) this.reusable = false
    else if (keepFor !== undefined) this.idleUntil = Date.now() + keepFor
    if (code === 204 || code === 304) {
      this.#length = 0
      return
    }
    if (transferEncoding !== undefined) {
      // "If a Transfer-Encoding header field is present … the final encoding is chunked, the message body
      // length is determined by reading and decoding the chunked data"; otherwise the body runs to the
      // close. A message with both is a smuggling hint: read it chunked, then close (§6.3).
      if (length !== undefined) this.reusable = false
      // Only `chunked` alone is read: this client asks for no other coding and cannot undo one.
      if (transferEncoding.trim().toLowerCase() !== 'chunked')
        throw new Http1Error('BAD_ANSWER', 'unsupported Transfer-Encoding')
      this.#chunked = true
      return
    }
    if (length !== undefined) {
      if (length > this.maxAnswerBytes) throw new Http1Error('ANSWER_TOO_LARGE', 'answer too large')
      this.#length = length
      return
    }
    this.#untilClose = true
    this.reusable = false
  }

  #take(part: Buffer): void {
    this.#bodyBytes += part.length
    if (this.#bodyBytes > this.maxAnswerBytes) throw new Http1Error('ANSWER_TOO_LARGE', 'answer too large')
    if (part.length > 0) this.#body.push(part)
  }

  /** Takes the body bytes of a Content-Length or close-delimited answer; returns what is past its end. */
  #fixed(input: Buffer): Buffer {
    if (this.#untilClose) {
      this.#take(input)
      return input.subarray(input.length)
    }
    const n = Math.min(this.#length - this.#bodyBytes, input.length)
    this.#take(input.subarray(0, n))
    return input.subarray(n)
  }

  /** Decodes as much of a chunked body as `input` holds; returns what is left past its end. */
  #chunks(input: Buffer): Buffer {
    let at = 0
    while (at < input.length) {
      if (this.#chunkLeft > 0) {
        const n = Math.min(this.#chunkLeft, input.length - at)
        this.#take(input.subarray(at, at + n))
        this.#chunkLeft -= n
        at += n
        if (this.#chunkLeft === 0) this.#chunkLeft = -3 // the CRLF after the data
        continue
      }
      const eol = input.indexOf('\r\n', at)
      if (eol < 0) {
        if (input.length - at > 4096) throw new Http1Error('BAD_ANSWER', 'chunk line too long')
        this.#buffer = input.subarray(at)
        return input.subarray(input.length)
      }
      const line = input.toString('latin1', at, eol)
      at = eol + 2
      if (this.#chunkLeft === -3) {
        if (line !== '') throw new Http1Error('BAD_ANSWER', 'chunk data not followed by CRLF')
        this.#chunkLeft = -1
      } else if (this.#chunkLeft === -1) {
        // chunk-size [ chunk-ext ]: extensions are ignored.
        const size = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(line)
        if (!size) throw new Http1Error('BAD_ANSWER', 'invalid chunk size')
        const n = Number.parseInt(size[1]!, 16)
        if (this.#bodyBytes + n > this.maxAnswerBytes)
          throw new Http1Error('ANSWER_TOO_LARGE', 'answer too large')
        this.#chunkLeft = n === 0 ? -2 : n
      } else if (line === '') {
        // The empty line after the last chunk and its trailer fields (which are ignored).
        this.#chunkLeft = 0
        this.#chunked = false
        this.#length = this.#bodyBytes
        return input.subarray(at)
      }
    }
    return input.subarray(input.length)
  }

  #complete(): boolean {
    return this.#headDone && !this.#chunked && !this.#untilClose && this.#bodyBytes >= this.#length
  }

  #finish(): void {
    const done = this.#done!
    this.#done = undefined
    clearTimeout(this.#timer)
    const body = this.#body
    const text = (body.length === 1 ? body[0]! : Buffer.concat(body)).toString('utf8')
    const status = this.#status
    this.#reset()
    done(undefined, { status, text })
  }

  #reset(): void {
    this.#buffer = undefined
    this.#status = 0
    this.#length = -1
    this.#chunked = false
    this.#untilClose = false
    this.#body = []
    this.#bodyBytes = 0
    this.#headDone = false
    this.#chunkLeft = -1
  }
}
