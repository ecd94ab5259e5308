import { it } from 'vitest'
import { type ExpectedProblem, expectedProblem, type RefusalCase } from './expectedProblems.js'
import type { KitState } from './singleUseCases.js'

/**
 * Registers a kit case about a refusal the core leaves to the rail: skipped, with a printed reason, when
 * the fixture turned `kind` off or the body calls `skip`; the body gets the declared problem or `'any'`.
 *
 * @example
 * ```ts
 * refusalCase(get, 'otherChallenge', 'refuses a payload made for another challenge', async (state, expected) => { … })
 * ```
 */
export function refusalCase(
  get: () => KitState,
  kind: RefusalCase,
  name: string,
  body: (state: KitState, expected: ExpectedProblem | 'any', skip: (reason: string) => void) => Promise<void>,
): void {
  it(name, async (context) => {
    const state = get()
    const expected = expectedProblem(state.fixture.problems, kind)
    if (expected === undefined) {
      console.warn(`[skip] ${name}: the fixture turned the ${kind} case off`)
      return context.skip()
    }
    let skipped: string | undefined
    await body(state, expected, (reason) => {
      skipped = reason
    })
    if (skipped !== undefined) {
      console.warn(`[skip] ${name}: ${skipped}`)
      context.skip()
    }
  })
}
