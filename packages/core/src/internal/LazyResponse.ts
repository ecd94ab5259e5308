/**
 * A Response whose body stream is built only when read. On Node 20 a body stream costs ~10 µs to
 * construct, more than all the rest of issuing a 402; problem bodies are small, known strings, so they
 * are kept as text and materialized on first access through the public body API (`body`, `text()`,
 * `json()`, `arrayBuffer()`, `bytes()`, `blob()`, `clone()`). Node frameworks read bodies through
 * that API. Runtimes that read Response internals natively (Bun, Deno, workers) get a plain Response.
 */
const native =
  typeof process !== 'undefined' &&
  !!process.versions?.node &&
  !('Bun' in globalThis) &&
  !('Deno' in globalThis)

class LazyResponse extends Response {
  #text: string
  #materialized: Response | undefined
  constructor(text: string, init: ResponseInit) {
    super(null, init)
    this.#text = text
  }
  #real(): Response {
    this.#materialized ??= new Response(this.#text, {
      status: this.status,
      statusText: this.statusText,
      headers: this.headers,
    })
    return this.#materialized
  }
  override get body(): Response['body'] {
    return this.#real().body
  }
  override get bodyUsed(): boolean {
    return this.#materialized?.bodyUsed ?? false
  }
  override text(): Promise<string> {
    return this.#real().text()
  }
  override json(): Promise<any> {
    return this.#real().json()
  }
  override arrayBuffer(): Promise<ArrayBuffer> {
    return this.#real().arrayBuffer()
  }
  override blob(): Promise<Blob> {
    return this.#real().blob()
  }
  override formData(): Promise<FormData> {
    return this.#real().formData()
  }
  override bytes(): ReturnType<Response['bytes']> {
    return this.#real().bytes()
  }
  override clone(): Response {
    return this.#materialized
      ? this.#materialized.clone()
      : new LazyResponse(this.#text, {
          status: this.status,
          statusText: this.statusText,
          headers: this.headers,
        })
  }
}

/** A Response with a small text body, built lazily where that is safe. */
export function textResponse(text: string, init: ResponseInit): Response {
  return native ? new LazyResponse(text, init) : new Response(text, init)
}
