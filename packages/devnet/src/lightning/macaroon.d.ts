// The `macaroon` package (v3) ships no type declarations; these cover the calls this folder makes.
declare module 'macaroon' {
  /** One caveat of a macaroon; first-party caveats carry only an identifier. */
  export interface MacaroonCaveat {
    identifier: Uint8Array
    location?: string
  }
  /** A macaroon as implemented by the `macaroon` package (libmacaroons / go-macaroon compatible). */
  export interface Macaroon {
    readonly identifier: Uint8Array
    readonly location: string
    readonly signature: Uint8Array
    readonly caveats: MacaroonCaveat[]
    addFirstPartyCaveat(caveat: string | Uint8Array): void
    verify(rootKey: Uint8Array, check: (condition: string) => string | null, discharges?: Macaroon[]): void
    exportBinary(): Uint8Array
    clone(): Macaroon
  }
  const macaroon: {
    newMacaroon(params: {
      identifier: Uint8Array | string
      location?: string
      rootKey: Uint8Array
      version?: 1 | 2
    }): Macaroon
    importMacaroon(serialized: Uint8Array | string | object): Macaroon
  }
  export default macaroon
}
