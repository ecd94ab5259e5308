// Property tests draw random inputs. Locally every run uses a fresh seed (so new counterexamples keep
// turning up); with FC_SEED set (as `.ci/run` does) every property uses that seed, so a CI run is
// reproducible. A failure always prints its seed and counterexample; fix the bug, then add the
// counterexample as a fixed case next to the property.
import fc from 'fast-check'

const seed = process.env.FC_SEED
if (seed !== undefined && seed !== '') {
  const value = Number(seed)
  if (!Number.isInteger(value)) throw new Error(`FC_SEED must be an integer, got ${seed}`)
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: value })
}
