import fc from 'fast-check'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fingerprint, parseForm } from '../src/stripe/form.js'
import { type StripeDevnet, startStripe } from '../src/stripe/index.js'

// Keys without brackets (Stripe param names never contain them); values any string.
const key = fc.string({ minLength: 1, maxLength: 8 }).filter((value) => !/[[\]]/.test(value))
type Tree = { [name: string]: string | Tree }
const tree: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.dictionary(key, fc.oneof({ depthSize: 'small' }, fc.string(), tie('tree')), { maxKeys: 4 }),
})).tree

/** Bracket encoding as the stripe SDK and curl produce it. */
function encode(value: Tree, prefix = ''): string[] {
  return Object.entries(value).flatMap(([name, item]) => {
    const path = prefix === '' ? name : `${prefix}[${name}]`
    if (typeof item === 'string') return [`${encodeURIComponent(path)}=${encodeURIComponent(item)}`]
    return encode(item, path)
  })
}

/** Drops empty objects, which have no form encoding. */
function prune(value: Tree): Tree {
  const out: Tree = {}
  for (const [name, item] of Object.entries(value)) {
    if (typeof item === 'string') out[name] = item
    else {
      const inner = prune(item)
      if (Object.keys(inner).length > 0) out[name] = inner
    }
  }
  return out
}

describe('parseForm', () => {
  it('decodes what the bracket encoding produces', () => {
    fc.assert(
      fc.property(tree, (value) => {
        expect({ ...parseForm(encode(value).join('&')) }).toEqual(JSON.parse(JSON.stringify(prune(value))))
      }),
    )
  })

  it('never throws on arbitrary input and ignores field order in fingerprints', () => {
    fc.assert(
      fc.property(fc.string(), (body) => {
        const parsed = parseForm(body)
        const reversed = parseForm(body.split('&').reverse().join('&'))
        // Reordering can change which duplicate wins, so compare only when keys are unique.
        const names = body.split('&').map((pair) => pair.split('=')[0])
        if (new Set(names).size === names.length) expect(fingerprint(reversed)).toBe(fingerprint(parsed))
      }),
    )
  })

  it('keeps a leading `?` as part of the first field name (a form body is not a query string)', () => {
    expect({ ...parseForm('?&') }).toEqual({ '?': '' })
    expect({ ...parseForm('&?') }).toEqual({ '?': '' })
    expect({ ...parseForm('?a=1&b=2') }).toEqual({ '?a': '1', b: '2' })
  })

  it('appends for `[]` and keeps indexed arrays', () => {
    expect(JSON.parse(JSON.stringify(parseForm('t[]=card&t[]=link&u[0]=a&u[1]=b')))).toEqual({
      t: { 0: 'card', 1: 'link' },
      u: { 0: 'a', 1: 'b' },
    })
  })
})

describe('expand', () => {
  let node: StripeDevnet
  beforeAll(async () => {
    node = await startStripe()
  })
  afterAll(async () => {
    await node.stop()
  })

  it('expands latest_charge and payment_method on a PaymentIntent, and refuses unknown fields', async () => {
    const { host, port, protocol, secretKey } = node.info
    const stripe = new Stripe(secretKey, { host, port, protocol })
    const pi = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      confirm: true,
      ...({ payment_method_types: ['card'] } as object),
      payment_method: 'pm_card_visa',
      expand: ['latest_charge'],
    })
    expect((pi.latest_charge as Stripe.Charge).amount).toBe(1000)
    const again = await stripe.paymentIntents.retrieve(pi.id, { expand: ['payment_method'] })
    expect((again.payment_method as Stripe.PaymentMethod).card?.last4).toBe('4242')
    await expect(stripe.paymentIntents.retrieve(pi.id, { expand: ['customer_balance'] })).rejects.toThrow(
      /cannot be expanded/,
    )
  })
})
