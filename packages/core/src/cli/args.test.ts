import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { baseUnits, formatUnits, parseArgs, suggest, UsageError } from './args.js'

const spec = {
  '--max-amount': { name: 'maxAmount', value: true },
  '--max-deposit': { name: 'maxDeposit', value: true },
  '-H': { name: 'header', value: true, repeat: true },
  '--yes': { name: 'yes', value: false },
} as const

describe('parseArgs', () => {
  it('reads values, --flag=value, repeated options, switches and positionals', () => {
    const parsed = parseArgs(
      ['u', '--max-amount', '5', '-H', 'a: 1', '-H', 'b: 2', '--yes', '--max-deposit=7'],
      spec,
    )
    expect(parsed.positionals).toEqual(['u'])
    expect(Object.fromEntries(parsed.values)).toEqual({ maxAmount: '5', maxDeposit: '7' })
    expect(parsed.lists.get('header')).toEqual(['a: 1', 'b: 2'])
    expect([...parsed.switches]).toEqual(['yes'])
  })

  it('refuses unknown options, suggesting the near one, and missing values', () => {
    expect(() => parseArgs(['u', '--maxamount', '100'], spec)).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: unknown option --maxamount (did you mean --max-amount?)]`,
    )
    expect(() => parseArgs(['u', '--foo'], spec)).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: unknown option --foo]`,
    )
    // A key pasted as an option is never echoed back.
    const key = `0x${'ab'.repeat(32)}`
    expect(() => parseArgs([`--${key}`], spec)).toThrow(/^unknown option \(68 characters, not shown\)$/)
    expect(() => parseArgs([`--key=${key}`], spec)).toThrow(/^unknown option --key \(did you mean/)
    expect(() => parseArgs(['u', '--max-amount'], spec)).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: --max-amount needs a value]`,
    )
    expect(() => parseArgs(['--yes=1'], spec)).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: --yes takes no value]`,
    )
  })

  it('never throws anything but a UsageError, and never drops an option silently', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.constantFrom('--max-amount', '--yes', '-H', '--'))),
        (argv) => {
          try {
            const parsed = parseArgs(argv, spec)
            const consumed =
              parsed.positionals.length +
              parsed.switches.size +
              [...parsed.lists.values()].flat().length +
              parsed.values.size
            expect(consumed).toBeLessThanOrEqual(argv.length)
          } catch (error) {
            expect(error).toBeInstanceOf(UsageError)
          }
        },
      ),
    )
  })
})

describe('suggest', () => {
  it('finds the option a typo meant', () => {
    expect(suggest('--max_deposit', spec)).toBe('--max-deposit')
    expect(suggest('--maxamount=3', spec)).toBe('--max-amount')
    expect(suggest('--nothing-like-it', spec)).toBeUndefined()
  })
})

describe('baseUnits', () => {
  it('takes whole base units only', () => {
    expect(baseUnits('--max-amount', '100')).toBe(100n)
    expect(baseUnits('--max-amount', undefined)).toBeUndefined()
    expect(() => baseUnits('--max-amount', '1e6')).toThrowErrorMatchingInlineSnapshot(
      `[UsageError: --max-amount takes a whole number of base units (e.g. 1000000), got "1e6"]`,
    )
  })
})

describe('formatUnits', () => {
  it('shows display units with grouped thousands', () => {
    expect(formatUnits(5_000_000_000n, 6)).toBe('5,000')
    expect(formatUnits(1234n, 6)).toBe('0.001234')
    expect(formatUnits(10_500_000n, 6)).toBe('10.5')
    expect(formatUnits(0n, 6)).toBe('0')
  })

  it('round-trips every amount', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), (amount) => {
        const [whole, fraction = ''] = formatUnits(amount, 6).replace(/,/g, '').split('.')
        expect(BigInt(whole!) * 1_000_000n + BigInt(fraction.padEnd(6, '0'))).toBe(amount)
      }),
    )
  })
})
