import { ConfigurationError } from '@mppkit/core/client'

/**
 * `fetch` to a JSON-RPC URL that may carry `user:password@`. fetch refuses such a URL ("Request cannot be
 * constructed from a URL that includes credentials") and quotes it whole in that error, so they are taken
 * out of the URL and sent as `Authorization: Basic base64(user:password)`, each part percent-decoded and
 * UTF-8 encoded, as viem's http transport sends them. A URL that does not parse, or whose credentials are
 * not valid percent-encoding, throws a `ConfigurationError` that names no part of it but its origin.
 *
 * @example
 * ```ts
 * await rpcFetch('http://user:pw@127.0.0.1:8899', { method: 'POST', body }) // to http://127.0.0.1:8899/ with Authorization: Basic dXNlcjpwdw==
 * ```
 */
export async function rpcFetch(rpcUrl: string, init: RequestInit): Promise<Response> {
  let url: URL
  try {
    url = new URL(rpcUrl)
  } catch {
    // The URL parser's error keeps the input: none of it is passed on.
    throw new ConfigurationError('x402 svm: rpcUrl is not a valid URL')
  }
  if (url.username === '' && url.password === '') return fetch(rpcUrl, init)
  let credentials: string
  try {
    credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
  } catch {
    throw new ConfigurationError(
      `x402 svm: the credentials of the RPC URL at ${url.origin} are not valid percent-encoding`,
    )
  }
  url.username = ''
  url.password = ''
  const headers = new Headers(init.headers)
  const bytes = new TextEncoder().encode(credentials)
  headers.set(
    'authorization',
    `Basic ${btoa(Array.from(bytes, (byte) => String.fromCharCode(byte)).join(''))}`,
  )
  return fetch(url.href, { ...init, headers })
}
