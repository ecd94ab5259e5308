/**
 * A tolerant, linear-time tokenizer for RFC 9110 §11 challenge lists (`WWW-Authenticate`):
 *
 *   challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param = token BWS "=" BWS ( token / quoted-string )
 *
 * Several challenges may share one field value, separated by commas; a new challenge starts where a
 * token is followed by whitespace and something that is not "=". Malformed parameters are skipped up
 * to the next top-level comma, so one bad extension parameter never hides the rest.
 */

export type RawChallenge = {
  scheme: string
  /** Lower-cased parameter names → values; `duplicates` lists names seen twice. */
  params: Map<string, string>
  duplicates: string[]
  token68?: string
}

// Character classes as ASCII lookup tables (one array read per character).
const table = (chars: string) => {
  const t = new Uint8Array(128)
  for (const c of chars) t[c.charCodeAt(0)] = 1
  return t
}
const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const tcharTable = table(`!#$%&'*+-.^_\`|~${alnum}`)
const token68Table = table(`-._~+/${alnum}`)
/** The value of the four hex digits at `at`, or -1. */
function hex4At(input: string, at: number): number {
  let value = 0
  for (let j = at; j < at + 4; j++) {
    const c = input.charCodeAt(j)
    const digit =
      c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x41 && c <= 0x46
          ? c - 0x37
          : c >= 0x61 && c <= 0x66
            ? c - 0x57
            : -1
    if (digit < 0) return -1
    value = value * 16 + digit
  }
  return value
}
// Shared empty values for challenges without parameters (replaced, never written to): a value that is
// a long run of bare schemes then allocates one object per scheme, not three.
const noParams: Map<string, string> = new Map()
const noDuplicates: string[] = []

function isWs(c: string | undefined): boolean {
  return c === ' ' || c === '\t'
}
function isTchar(input: string, i: number): boolean {
  return tcharTable[input.charCodeAt(i)] === 1
}
function isToken68char(input: string, i: number): boolean {
  return token68Table[input.charCodeAt(i)] === 1
}

/**
 * Splits a field value into raw challenges. Never throws. Linear in the length of the input: every
 * character is looked at a bounded number of times (the token68 look-ahead rewinds at most once per
 * challenge, over characters the next step consumes). Callers cap the length (Challenge.maxHeaderLength).
 */
export function parseChallenges(input: string): RawChallenge[] {
  const out: RawChallenge[] = []
  const n = input.length
  let i = 0

  const skipWs = () => {
    while (i < n && isWs(input[i])) i++
  }
  const readToken = (): string => {
    const start = i
    while (i < n && isTchar(input, i)) i++
    return input.slice(start, i)
  }
  // Reads a quoted-string starting at `"`; returns undefined if unterminated (i moves to the end).
  // RFC 9110 quoted-pair (`\x` → `x`), plus `\uXXXX` → that UTF-16 code unit: the escape Challenge.format
  // and mppx write for characters a header cannot carry. (A literal backslash is always written `\\`,
  // so a `\u` followed by four hex digits is never a quoted-pair of `u` from those writers.)
  const readQuoted = (): string | undefined => {
    i++ // opening quote
    // Find the closing quote first (a quoted-pair is two characters; `\uXXXX`'s hex digits are neither
    // a quote nor a backslash): an unterminated value is refused without building anything.
    const start = i
    let escaped = false
    while (i < n) {
      const c = input.charCodeAt(i)
      if (c === 0x22 /* " */) break
      if (c === 0x5c /* \ */) {
        escaped = true
        i += 2
      } else i++
    }
    if (i >= n) {
      i = n
      return undefined
    }
    const end = i
    i++ // closing quote
    if (!escaped) return input.slice(start, end)
    // One code unit per character or escape, into one buffer (no string per escape: a megabyte of
    // escapes stays linear, without garbage for the collector). Lone surrogates stay as written.
    const units = new Uint16Array(end - start)
    let k = 0
    for (let j = start; j < end; ) {
      const c = input.charCodeAt(j)
      if (c !== 0x5c /* \ */) {
        units[k++] = c
        j++
        continue
      }
      const unit = input.charCodeAt(j + 1) === 0x75 /* u */ && j + 6 <= end ? hex4At(input, j + 2) : -1
      if (unit >= 0) {
        units[k++] = unit
        j += 6
      } else {
        units[k++] = input.charCodeAt(j + 1)
        j += 2
      }
    }
    let value = ''
    for (let from = 0; from < k; from += 8192)
      value += String.fromCharCode(...units.subarray(from, Math.min(k, from + 8192)))
    return value
  }
  // Skips to the next top-level comma (outside quotes), leaving i on it (or at the end).
  const skipToComma = () => {
    while (i < n && input[i] !== ',') {
      if (input[i] === '"') {
        i++
        while (i < n && input[i] !== '"') i += input[i] === '\\' ? 2 : 1
        if (i < n) i++
      } else i++
    }
  }

  let current: RawChallenge | undefined
  while (i < n) {
    skipWs()
    if (input[i] === ',') {
      i++
      continue
    }
    if (i >= n) break
    const name = readToken()
    if (name === '') {
      // Junk character: skip the element.
      skipToComma()
      continue
    }
    const afterName = i
    skipWs()
    if (input[i] === '=' && current !== undefined) {
      // auth-param of the current challenge (unless it is really token68 padding, handled below).
      i++
      skipWs()
      let value: string | undefined
      if (input[i] === '"') value = readQuoted()
      else {
        const t = readToken()
        value = t === '' ? undefined : t
      }
      if (value !== undefined) {
        const key = name.toLowerCase()
        if (current.params.has(key)) {
          if (current.duplicates === noDuplicates) current.duplicates = []
          current.duplicates.push(key)
        } else {
          if (current.params === noParams) current.params = new Map()
          current.params.set(key, value)
        }
      }
      skipWs()
      if (i < n && input[i] !== ',') skipToComma()
      continue
    }
    // A new challenge: `name` is its scheme.
    i = afterName
    current = { scheme: name, params: noParams, duplicates: noDuplicates }
    out.push(current)
    if (i >= n) break
    if (!isWs(input[i])) {
      skipToComma()
      continue
    }
    skipWs()
    // token68? (a run of token68 chars, optional '=' padding, then end or comma)
    const save = i
    while (i < n && isToken68char(input, i)) i++
    if (i > save) {
      let j = i
      while (j < n && input[j] === '=') j++
      let k = j
      while (k < n && isWs(input[k])) k++
      if (k >= n || input[k] === ',') {
        current.token68 = input.slice(save, j)
        i = k
        continue
      }
    }
    i = save
  }
  return out
}
