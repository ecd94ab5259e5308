import * as Base64url from '../Base64url.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import * as Digest from '../Digest.js'
import {
  InvalidChallengeError,
  MalformedCredentialError,
  MethodUnsupportedError,
  PaymentError,
  PaymentExpiredError,
  ServiceUnavailableError,
  VerificationFailedError,
} from '../Errors.js'
import * as Expires from '../Expires.js'
import type * as IdempotencyCache from '../IdempotencyCache.js'
import * as Jcs from '../Jcs.js'
import type * as Method from '../Method.js'
import type * as Receipt from '../Receipt.js'
import type { Core } from './Core.js'
import { type Binding, type Idempotency, type Resumed, storeFailure } from './Idempotency.js'
import { type ChallengeInput, ownCopy, type Problem } from './Issuance.js'
import { type CompiledOffer, type CompiledRoute, pinnedRequest, type Route } from './Offers.js'
import { Paid, type PaidInternals } from './Paid.js'
import { ByteBoundedCache, deepFreeze, type Verification } from './Verification.js'

/**
 * One payment attempt as data, whatever the transport: the route, the credential (the base64url token
 * of an HTTP header, or the parsed object of a JSON-RPC `_meta`), the body or its digest, and the
 * idempotency key.
 */
export type PaymentInput = ChallengeInput & {
  route: Route
  credential: string | Credential.Credential
  /** The client's `Idempotency-Key` (≤ 255 characters; longer keys are ignored). */
  idempotencyKey?: string | null | undefined
}

/** A retry answered with the response stored for it (Idempotency-Key, or `replaysConsumed`). */
export type Replay = {
  status: 'replay'
  response: IdempotencyCache.StoredResponse
  receipt: Receipt.Receipt
}

/** What {@link PaymentInput} comes to: paid (serve the handler), refused (problem + challenges), or a replay. */
export type Outcome = Paid | Problem | Replay

/** What the pipeline carries from step to step (like a hono Context). */
type State = {
  readonly input: PaymentInput
  readonly compiled: CompiledRoute
  /** The credential as sent (the token, or the canonical JSON of a parsed credential): fingerprinted. */
  token: string
  credential: Credential.Credential
  wireRequest: string
  candidates: CompiledOffer[]
  binding: Binding | undefined
  entry: CompiledOffer
  request: unknown
  payload: unknown
  /** The memo of this exact token when it was presented and settled before (see `resent`). */
  resent: Resent | undefined
  /** Whether the method lets this payload be presented again (asked once, in `consume`). */
  reuses: boolean
  /** This attempt's consumed mark of the challenge, once claimed (see `claimConsumed`). */
  mark: string | undefined
  /** The challenge had expired, and its method resumed the settlement it began (see `checkExpiry`). */
  resumed: boolean | undefined
}

/** What a reusable credential decoded to the first time it settled (frozen: shared by later requests). */
type Resent = {
  credential: Credential.Credential
  wireRequest: string
  entry: CompiledOffer
  request: unknown
  payload: unknown
}

/** Bytes of tokens the memo of reusable credentials holds (past it, the memo starts over). */
const resentBudgetBytes = 1024 * 1024

/** A step returns nothing to continue, a PaymentError to refuse, or the final outcome. */
type Step = (state: State) => undefined | PaymentError | Outcome | Promise<undefined | PaymentError | Outcome>

/** Dependencies of the pipeline, built once per server. */
export type Dependencies = {
  core: Core
  verification: Verification
  idempotency: Idempotency
  refuse: (compiled: CompiledRoute, input: ChallengeInput, error?: PaymentError) => Problem | Promise<Problem>
}

/**
 * Returns the transport-neutral payment pipeline of a server: small named steps over a state object,
 * each returning nothing (go on), a PaymentError (refuse, with fresh challenges for a 402) or the
 * outcome. Expected failures never throw: they are problems.
 *
 * @example
 * ```ts
 * const authorize = Authorize.pipeline(dependencies)
 * const outcome = await authorize(compiled, { route, request, credential: token })
 * ```
 * @see draft-httpauth-payment-00 §5.2, §11
 */
export function pipeline(dependencies: Dependencies) {
  const { core, verification, idempotency, refuse } = dependencies
  const { store, prefix } = core
  const internals: PaidInternals = { core, idempotency }

  // A method may name its own problem for a challenge it does not recognize (see Method.challengeProblem).
  const methodProblem = (state: State, kind: Method.ChallengeProblemKind): PaymentError | undefined => {
    for (const candidate of state.candidates) {
      try {
        const found = candidate.method.challengeProblem?.(state.credential.payload, kind)
        if (found) return found
      } catch (cause) {
        core.report(cause, 'challenge')
      }
    }
    return undefined
  }

  const malformed = () =>
    new MalformedCredentialError({ detail: 'The Payment credential could not be decoded.' })

  // A credential a method lets be presented again (reusesChallenge: a session's vouchers, which a
  // client pre-authorizing requests resends) is decoded, bound and schema-checked once: those are pure
  // functions of the token string and this server's secrets and offers. Only a token that passed every
  // step and settled is remembered; expiry, body digest, offer pinning, the method's verify and settle
  // still run on every request.
  const resent = new ByteBoundedCache<Resent>(resentBudgetBytes)

  const decode: Step = (state) => {
    const sent = state.input.credential
    try {
      if (typeof sent === 'string') {
        // Only a route whose methods reuse credentials can hold one (a lookup hashes the whole token).
        const known = state.compiled.reusable ? resent.get(sent) : undefined
        if (known !== undefined) {
          state.resent = known
          state.credential = known.credential
          state.wireRequest = known.wireRequest
          state.token = sent
          return undefined
        }
        const decoded = Credential.decodeWithRequest(sent, verification.decodeRequest)
        state.credential = decoded.credential
        state.wireRequest = decoded.requestB64
        state.token = sent
        return undefined
      }
      // A parsed credential (JSON transports) carries `request` as an object: its JCS form is the wire form.
      if (typeof sent !== 'object' || sent === null) return malformed()
      Challenge.validate(sent.challenge)
      if (typeof sent.payload !== 'object' || sent.payload === null || Array.isArray(sent.payload))
        return malformed()
      state.credential = sent
      state.wireRequest = Challenge.encodeRequest(sent.challenge.request)
      state.token = Jcs.canonicalize(sent)
      return undefined
    } catch {
      // Not decodable, or too deep to decode or canonicalize: a 402, never a 5xx.
      return malformed()
    }
  }

  // A route may offer one method/intent several times (two currencies, two recipients): each is a candidate.
  const selectCandidates: Step = (state) => {
    const { method, intent } = state.credential.challenge
    state.candidates = state.compiled.offers.filter(
      (offer) => offer.method.definition.name === method && offer.intent === intent,
    )
    if (state.candidates.length === 0)
      return new MethodUnsupportedError({ detail: `${method}/${intent} is not accepted here.` })
    return undefined
  }

  // "Servers MUST verify that credentials present an `id` matching the expected binding." (§5.1.3)
  const checkBinding: Step = (state) => {
    const echoed = state.credential.challenge
    if (state.resent) return undefined
    if (echoed.realm === core.realm && verification.binds(echoed, state.wireRequest)) return undefined
    return (
      methodProblem(state, 'unknown') ??
      new InvalidChallengeError({ detail: 'The challenge id does not match its parameters.' })
    )
  }

  // The body is checked before anything is served, Idempotency-Key replays included: a replay must not
  // deliver (or re-run the handler on) a body the payment did not bind.
  const checkBody: Step = (state) => {
    const { body, digest } = state.input
    const echoed = state.credential.challenge.digest
    if (echoed !== undefined) {
      const matches =
        body !== undefined || digest === undefined
          ? Digest.verify(echoed, body ?? new Uint8Array())
          : echoed === digest
      if (!matches)
        return new VerificationFailedError({
          detail: 'The request body does not match the challenge digest.',
          reason: 'digest-mismatch',
        })
    } else if (body !== undefined || digest !== undefined) {
      return new VerificationFailedError({
        detail: 'The challenge does not bind this request body.',
        reason: 'digest-missing',
      })
    }
    return undefined
  }

  const continued = (state: State, resumed: Resumed): PaymentError | Outcome | undefined => {
    if (resumed === undefined) return undefined
    if (resumed.status === 'replay') return resumed
    if (resumed.status === 'refuse')
      return resumed.error.type === 'invalid-challenge'
        ? (methodProblem(state, 'consumed') ?? resumed.error)
        : resumed.error
    return new Paid(internals, state.credential, resumed.receipt, undefined, undefined, state.binding)
  }

  // A retry of a request that was already paid is answered before expiry checks: the payment happened,
  // so the client must be able to recover its response. It runs after pinOffer: a record is keyed by
  // the Idempotency-Key (or the challenge id) and fingerprinted by credential and body only, so without
  // the pin a credential paid on a cheap route could be served (or replayed) on a dearer one.
  const resumeRetry: Step = (state) => {
    const replaysConsumed = state.entry.method.replaysConsumed === true
    const { idempotencyKey } = state.input
    if (!idempotencyKey && !replaysConsumed) return undefined
    state.binding = idempotency.bind({
      idempotencyKey: idempotencyKey ?? undefined,
      challengeId: state.credential.challenge.id,
      token: state.token,
      body: state.input.body,
      digest: state.input.digest,
      replaysConsumed,
    })
    const binding = state.binding
    if (!binding) return undefined
    return idempotency.lookup(binding).then(
      (resumed) => continued(state, resumed),
      (cause) => storeFailure(core, cause),
    )
  }

  const checkExpiry: Step = (state) => {
    const { expires } = state.credential.challenge
    // This server always issues `expires`; an echo without it was not issued for this route.
    if (expires === undefined)
      return (
        methodProblem(state, 'unknown') ??
        new InvalidChallengeError({ detail: 'The challenge has no expiry.' })
      )
    if (Expires.isExpired(expires, core.now())) {
      const expired = () =>
        methodProblem(state, 'expired') ?? new PaymentExpiredError({ detail: 'The challenge has expired.' })
      // A method may resume the settlement it began for exactly this challenge (see
      // Method.resumesExpired), within its window only. "Verify the challenge has not expired" (e.g.
      // draft-stripe-charge-00 §Verification Procedure, step 2) held when that settlement began: the
      // resend continues it (the payer may be charged), it does not start a payment on an expired one.
      const { method } = state.entry
      if (method.resumesExpired === undefined || !withinWindow(expires, resumeWindowOf(method), core.now()))
        return expired()
      return Promise.resolve()
        .then(() =>
          method.resumesExpired!({
            challenge: state.credential.challenge,
            payload: state.credential.payload,
            store: core.storeFor(method),
          }),
        )
        .then(
          (resumes) => {
            if (resumes !== true) return expired()
            state.resumed = true
            return undefined
          },
          (cause) => storeFailure(core, cause),
        )
    }
    return undefined
  }

  /**
   * How long the consumed mark of a challenge is kept, in ms from now: until it expires plus 60 s; for
   * a credential resumed past its expiry (see Method.resumesExpired), the method's whole window, so that
   * no second request settles it while this one does.
   */
  const markLifetime = (state: State) =>
    Math.max(
      1_000,
      Expires.parse(state.credential.challenge.expires!) -
        core.now() +
        60_000 +
        (state.resumed ? resumeWindowOf(state.entry.method) : 0),
    )

  // The echoed challenge must still equal what one of the route's offers pins now: request fields
  // (price changes), opaque (cross-route replay) and credential header. "Servers MUST verify that
  // credentials present an `id` matching the expected binding." (§5.1.3): the binding expected here is
  // this route's, for fresh requests and retries alike, since "Servers MUST NOT perform side effects
  // […] for requests that have not been paid." (§11.5)
  const pinOffer: Step = (state) => {
    // Static offers (the usual case) are compared without a promise.
    const [only] = state.candidates
    // A remembered token matched this very offer before: the comparison is a pure function of the two.
    if (state.candidates.length === 1 && only!.staticRequest && state.resent?.entry === only) {
      state.entry = only!
      return undefined
    }
    if (state.candidates.length === 1 && only!.staticRequest) {
      const field = verification.mismatch(
        only!,
        only!.staticRequest,
        state.wireRequest,
        state.credential.challenge,
      )
      if (field === undefined) {
        state.entry = only!
        return undefined
      }
      return new InvalidChallengeError({ detail: `The challenge ${field} does not match this resource.` })
    }
    return pinDynamic(state)
  }

  const pinDynamic = async (state: State): Promise<PaymentError | undefined> => {
    let mismatch: string | undefined
    let priceFailed = false
    for (const candidate of state.candidates) {
      let pinned: Record<string, unknown>
      try {
        // Each price function gets its own copy of a request with a body: the handler reads the original.
        pinned = candidate.staticRequest ?? (await pinnedRequest(candidate, ownCopy(state.input.request)))
      } catch (cause) {
        core.report(cause, 'challenge')
        priceFailed = true
        continue
      }
      const field = verification.mismatch(candidate, pinned, state.wireRequest, state.credential.challenge)
      if (field === undefined) {
        state.entry = candidate
        return undefined
      }
      mismatch ??= field
    }
    if (priceFailed) return new ServiceUnavailableError({ detail: 'Could not price the request' })
    return new InvalidChallengeError({ detail: `The challenge ${mismatch} does not match this resource.` })
  }

  const parseSchemas: Step = (state) => {
    const { entry, credential } = state
    if (state.resent?.entry === entry) {
      state.request = state.resent.request
      state.payload = state.resent.payload
      return undefined
    }
    const definition = entry.method.definition
    const request = verification.parseRequest(entry, state.wireRequest, credential.challenge.request)
    if (!request.success)
      return new InvalidChallengeError({ detail: 'The challenge request is invalid for this method.' })
    let payload: ReturnType<Method.Schema<unknown>['safeParse']>
    try {
      payload = definition.payload.safeParse(credential.payload)
    } catch (error) {
      payload = { success: false, error }
    }
    if (!payload.success)
      return (
        methodProblem(state, 'malformed') ??
        new MalformedCredentialError({
          detail: `The ${definition.name}/${definition.intent} payload is invalid.`,
        })
      )
    state.request = request.data
    state.payload = payload.data
    return undefined
  }

  const consumedKey = (id: string) => `${prefix}consumed:${id}`

  // The consumed mark of a challenge holds the id of the attempt that claimed it (this process's random
  // prefix and a counter: no two attempts anywhere share one). A mark is never taken over by another
  // process: only the attempt that holds it, once it has ended without settling, releases it, and
  // nothing else lets a challenge settle twice (methods' own keys let the same challenge through again,
  // so that a retry after an outage settles). When that release cannot reach the store (its reply
  // lost, the store down), the mark is remembered here as this process's own: a retry of the challenge
  // that reaches this process takes it back at once (compare-and-set from the remembered value: one
  // retry wins), and the release is tried again in the background until it lands or the mark would
  // have expired. Without this, one lost reply from the store left a paid credential "already used"
  // for good, though nothing settled.
  const released = 'released'
  const attemptPrefix = `${globalThis.crypto.randomUUID()}.`
  let attempts = 0
  const nextMark = () => `${attemptPrefix}${++attempts}`
  type Unreleased = {
    /** Every mark of this key whose release did not land: any one of them may be the one in the store. */
    marks: string[]
    until: number
    timer?: ReturnType<typeof setTimeout> | undefined
    running: boolean
  }
  /** Marks of this process's ended, unsettled attempts whose release has not reached the store yet. */
  const unreleased = new Map<string, Unreleased>()
  let unreleasedMarks = 0
  const maxUnreleasedMarks = 10_000
  let reportedFull = false
  const dropUnreleased = (key: string, entry: Unreleased) => {
    if (unreleased.get(key) !== entry) return
    if (entry.timer) clearTimeout(entry.timer)
    unreleasedMarks -= entry.marks.length
    unreleased.delete(key)
  }
  /**
   * Releases `mark` at `key` if it still holds it. `released` is written with the mark's own lifetime,
   * so a claim that finds it can always take it by compare-and-set (a shorter one could expire between
   * a claim's two steps and refuse both).
   */
  // Async: a store that throws at the call (not in its promise) is a failed release like any other.
  const releaseMark = async (key: string, mark: string, ttl: number) =>
    store.compareAndSet(key, mark, released, Math.max(1, Math.ceil(ttl)))
  const scheduleRelease = (key: string, entry: Unreleased, delay: number) => {
    entry.timer = setTimeout(() => void retryRelease(key, entry, delay), delay)
    entry.timer.unref?.()
  }
  const retryRelease = async (key: string, entry: Unreleased, delay: number) => {
    entry.timer = undefined
    if (unreleased.get(key) !== entry) return
    if (core.now() >= entry.until) return dropUnreleased(key, entry)
    entry.running = true
    const done: string[] = []
    let failed = false
    for (const mark of [...entry.marks])
      try {
        await releaseMark(key, mark, entry.until - core.now())
        done.push(mark)
      } catch {
        failed = true
        break
      }
    entry.running = false
    if (unreleased.get(key) !== entry) return
    // Only the marks released here: others may have joined meanwhile.
    const left = entry.marks.filter((mark) => !done.includes(mark))
    unreleasedMarks -= entry.marks.length - left.length
    entry.marks = left
    if (left.length === 0) return dropUnreleased(key, entry)
    if (!entry.timer) scheduleRelease(key, entry, failed ? Math.min(delay * 2, 60_000) : 1_000)
  }
  /**
   * Remembers an unsettled attempt's mark whose release failed (or whose claim's answer was lost: it may
   * be in the store or not), and retries the release in the background.
   */
  const keepUnreleased = (key: string, mark: string, ttl: number) => {
    let entry = unreleased.get(key)
    if (!entry?.marks.includes(mark)) {
      if (unreleasedMarks >= maxUnreleasedMarks) {
        if (!reportedFull) {
          reportedFull = true
          core.report(
            new Error(
              `${maxUnreleasedMarks} consumed marks of unsettled attempts wait for the store: more are not kept, so their challenges stay used until they expire`,
            ),
            'store',
          )
        }
        return
      }
      if (entry === undefined) {
        entry = { marks: [], until: 0, running: false }
        unreleased.set(key, entry)
      }
      entry.marks.push(mark)
      unreleasedMarks++
    }
    entry.until = Math.max(entry.until, core.now() + ttl)
    if (!entry.timer && !entry.running) scheduleRelease(key, entry, 1_000)
  }
  /** Claims the challenge's consumed mark as `mark`: true when this attempt may settle. */
  const claimConsumed = async (key: string, mark: string, ttl: number): Promise<boolean> => {
    const own = unreleased.get(key)
    // An attempt of this process ended without settling and its release never landed: take it back
    // (one key holds one value, so once one is taken back none of the others is in the store).
    if (own !== undefined)
      for (const held of [...own.marks])
        if (await store.compareAndSet(key, held, mark, ttl)) {
          dropUnreleased(key, own)
          return true
        }
    if (await store.putIfAbsent(key, mark, ttl)) return true
    // A released mark (an ended attempt's) is free: only a refused claim pays for this second operation.
    return store.compareAndSet(key, released, mark, ttl)
  }

  // "A credential is consumed exactly once, even when submitted concurrently." (§11.6) A method may
  // waive this for payloads that can only take effect once by themselves (see reusesChallenge).
  const consume: Step = (state) => {
    // Nothing to claim or consume (a reusable payload without an Idempotency-Key): no promise.
    state.reuses = state.entry.method.reusesChallenge?.(state.payload) === true
    if (!state.binding && state.reuses) return undefined
    return consumeAsync(state)
  }
  const consumeAsync = async (state: State): Promise<undefined | PaymentError | Outcome> => {
    const echoed = state.credential.challenge
    const reuses = state.reuses
    const ttl = markLifetime(state)
    try {
      if (state.binding) {
        const outcome = continued(state, await idempotency.claim(state.binding))
        if (outcome) return outcome
      }
      if (!reuses) {
        const mark = nextMark()
        let claimed: boolean
        try {
          claimed = await claimConsumed(consumedKey(echoed.id), mark, ttl)
        } catch (cause) {
          // The claim's write may have landed though its answer did not: this attempt's mark, if there.
          keepUnreleased(consumedKey(echoed.id), mark, ttl)
          throw cause
        }
        if (claimed) state.mark = mark
        else {
          await idempotency.release(state.binding)
          return (
            methodProblem(state, 'consumed') ??
            new InvalidChallengeError({ detail: 'The challenge has already been used.' })
          )
        }
      }
    } catch (cause) {
      // Nothing was consumed or settled: release the key so a retry is not locked out by a store flake.
      await idempotency.release(state.binding)
      return storeFailure(core, cause)
    }
    return undefined
  }

  const settle: Step = async (state) => {
    const { entry, credential } = state
    const echoed = credential.challenge
    const definition = entry.method.definition
    const reuses = state.reuses
    const context: Method.VerifyContext<any, any> = {
      challenge: echoed,
      request: state.request,
      payload: state.payload,
      credential,
      store: core.storeFor(entry.method),
      httpRequest: state.input.request,
    }
    let settlement: Method.Settlement
    try {
      const verified = await entry.method.verify(context)
      settlement = await entry.method.settle(Object.assign(context, { verified }))
    } catch (cause) {
      // A method that failed after value moved, or may have, marks its error `consumed`: "A payment
      // proof MUST be usable exactly once; subsequent attempts to use the same proof MUST be rejected"
      // (§Replay Protection), so the challenge stays consumed and the same credential is refused as
      // used (`invalid-challenge`, or the method's `consumed` problem). It is reported, for the operator
      // to reconcile. Otherwise nothing was settled (settle is idempotent per challenge, so a retry is
      // safe): release the challenge so the client can retry the same credential after a transient
      // failure.
      const consumed = PaymentError.is(cause) && cause.consumed === true
      if (!reuses && !consumed && state.mark !== undefined) {
        const key = consumedKey(echoed.id)
        const mark = state.mark
        const ttl = markLifetime(state)
        await releaseMark(key, mark, ttl).catch((failure) => {
          // Kept as this process's own, released later (see keepUnreleased).
          core.report(failure, 'store')
          keepUnreleased(key, mark, ttl)
        })
      }
      // The key's record is released either way: no receipt was recorded, so there is nothing to replay
      // or serve, and a retry with the key gets the answer a retry without it gets (the released
      // challenge settles; a consumed one is refused as used) rather than a 409 until the lease ends.
      await idempotency.release(state.binding)
      if (PaymentError.is(cause)) {
        if (consumed) core.report(cause, 'settle')
        return cause
      }
      core.report(cause, 'settle')
      return new ServiceUnavailableError({
        detail: `The ${definition.name} rail is unavailable.`,
        reason: 'rail-unavailable',
      })
    }
    // Settled from here on: nothing may turn this request into a 503 ("nothing was charged", and a retry
    // is then refused as already used). A method's receipt fields that cannot be copied or serialized
    // (a bigint, a cycle, a throwing getter or toJSON) are a method bug, reported as such; the client
    // gets a receipt of the server's own fields and the response it paid for.
    const timestamp = timestampAt(core.now())
    let receipt: Receipt.Receipt
    let receiptHeader: string
    try {
      receipt = receiptOf(settlement, definition.name, timestamp, echoed.id)
      receiptHeader = Base64url.encode(JSON.stringify(receipt))
    } catch (cause) {
      core.report(cause, 'settle')
      receipt = coreReceiptOf(settlement, definition.name, timestamp, echoed.id)
      receiptHeader = Base64url.encode(JSON.stringify(receipt))
    }
    if (reuses && state.resent === undefined && typeof state.input.credential === 'string')
      resent.set(state.input.credential, {
        credential: deepFreeze(credential),
        wireRequest: state.wireRequest,
        entry,
        request: state.request,
        payload: deepFreeze(state.payload),
      })
    // Paid: a failed write is reported and the response served anyway rather than losing the payment.
    if (state.binding) await idempotency.record(state.binding, { state: 'serving', receipt })
    return new Paid(
      internals,
      credential,
      receipt,
      settlement.context,
      settlement.response,
      state.binding,
      receiptHeader,
    )
  }

  const steps: readonly Step[] = [
    decode,
    selectCandidates,
    checkBinding,
    checkBody,
    // Before any stored record is served or replayed: a retry is pinned to this route like any request.
    pinOffer,
    resumeRetry,
    checkExpiry,
    parseSchemas,
    consume,
    settle,
  ]

  return async (compiled: CompiledRoute, input: PaymentInput): Promise<Outcome> => {
    const state = { input, compiled } as State
    for (const step of steps) {
      let result = step(state)
      // Synchronous steps stay synchronous: no microtask per step.
      if (result instanceof Promise) result = await result
      if (result === undefined) continue
      if (PaymentError.is(result)) return refuse(compiled, input, result)
      return result as Outcome
    }
    // Unreachable: the last step always decides.
    return refuse(compiled, input, new ServiceUnavailableError())
  }
}

/** A method's `resumeWindowMs` when it is a non-negative finite number, else 0 (no resumption window). */
function resumeWindowOf(method: Method.Server): number {
  const window = method.resumeWindowMs
  return typeof window === 'number' && Number.isFinite(window) && window > 0 ? window : 0
}

/** Whether `now` is less than `windowMs` past the expiry `expires` (false for an unreadable one). */
function withinWindow(expires: string, windowMs: number, now: number): boolean {
  try {
    return Expires.parse(expires) + windowMs > now
  } catch {
    return false
  }
}

/** The receipt of a settlement: the method's fields first (in their order), then the server's. */
function receiptOf(
  settlement: Method.Settlement,
  method: string,
  timestamp: string,
  challengeId: string,
): Receipt.Receipt {
  // Copied with Object.assign, then completed field by field: an object spread here takes V8's slow
  // path (~3 µs per receipt on Node 20, more than the rest of a session voucher's own work). A
  // `__proto__` field, which assign would take as the prototype, is copied by a spread instead.
  const fields = settlement.receipt
  const receipt = (
    fields && Object.hasOwn(fields, '__proto__') ? { ...fields } : Object.assign({}, fields)
  ) as Receipt.Receipt
  receipt.status = 'success'
  receipt.method = method
  receipt.timestamp = timestamp
  receipt.reference = settlement.reference
  // "`challengeId` (REQUIRED): The `id` from the fulfilled challenge." (transport-mcp §Receipt Structure)
  receipt.challengeId = challengeId
  if (settlement.externalId !== undefined) receipt.externalId = settlement.externalId
  return receipt
}

/**
 * The receipt of the server's own fields only, every one a string (so it always serializes): what is
 * sent when the method's receipt fields cannot be.
 */
function coreReceiptOf(
  settlement: Method.Settlement,
  method: string,
  timestamp: string,
  challengeId: string,
): Receipt.Receipt {
  // "`reference` | string | Method-specific reference" (§5.3): a method's non-string is coerced.
  const receipt: Receipt.Receipt = {
    status: 'success',
    method,
    timestamp,
    reference: text(settlement.reference),
    challengeId,
  }
  if (settlement.externalId !== undefined) receipt.externalId = text(settlement.externalId)
  return receipt
}

/** A string as it is, anything else as String() makes it ('' when even that throws). */
function text(value: unknown): string {
  if (typeof value === 'string') return value
  try {
    return String(value)
  } catch {
    return ''
  }
}

let timestampCache = { second: -1, value: '' }
function timestampAt(nowMs: number): string {
  const second = Math.floor(nowMs / 1000)
  if (timestampCache.second !== second) timestampCache = { second, value: Expires.format(second * 1000) }
  return timestampCache.value
}
