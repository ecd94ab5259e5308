import { randomBytes } from 'node:crypto'
import macaroonLibrary from 'macaroon'

/**
 * One LND permission: an entity (`info`, `offchain`, `invoices`, …) and an action (`read`, `write`).
 *
 * @example
 * ```ts
 * const permission: Permission = { entity: 'invoices', action: 'write' }
 * ```
 */
export interface Permission {
  entity: string
  action: string
}

/**
 * The operations LND bakes into `admin.macaroon`, `readonly.macaroon` and `invoice.macaroon`.
 *
 * @example
 * ```ts
 * const ops = macaroonOperations.invoice
 * ```
 */
export const macaroonOperations = {
  admin: {
    address: ['read', 'write'],
    info: ['read', 'write'],
    invoices: ['read', 'write'],
    macaroon: ['generate', 'read', 'write'],
    message: ['read', 'write'],
    offchain: ['read', 'write'],
    onchain: ['read', 'write'],
    peers: ['read', 'write'],
    signer: ['generate', 'read'],
  },
  readonly: {
    address: ['read'],
    info: ['read'],
    invoices: ['read'],
    macaroon: ['read'],
    message: ['read'],
    offchain: ['read'],
    onchain: ['read'],
    peers: ['read'],
    signer: ['read'],
  },
  invoice: {
    address: ['read', 'write'],
    invoices: ['read', 'write'],
    onchain: ['read'],
  },
} as const satisfies Record<string, Record<string, readonly string[]>>

/** The root key id LND stores its default root key under (`storageId` in the identifier). */
const defaultRootKeyId = '0'
/** LND prefixes the protobuf `MacaroonId` with this version byte (macaroon-bakery v3 ids). */
const identifierVersion = 3

// Protobuf writer for bakery's `MacaroonId { bytes nonce = 1; bytes storageId = 2; repeated Op ops = 3 }`
// and `Op { string entity = 1; repeated string actions = 2 }`: four length-delimited fields do not
// justify a runtime schema.
const varint = (value: number) => {
  const bytes: number[] = []
  let rest = value
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80)
    rest >>>= 7
  }
  bytes.push(rest)
  return Buffer.from(bytes)
}
const field = (fieldNumber: number, content: Buffer) =>
  Buffer.concat([varint((fieldNumber << 3) | 2), varint(content.length), content])

const encodeIdentifier = (nonce: Buffer, rootKeyId: string, operations: Record<string, readonly string[]>) =>
  Buffer.concat([
    Buffer.from([identifierVersion]),
    field(1, nonce),
    field(2, Buffer.from(rootKeyId, 'utf8')),
    ...Object.entries(operations).map(([entity, actions]) =>
      field(
        3,
        Buffer.concat([
          field(1, Buffer.from(entity, 'utf8')),
          ...actions.map((action) => field(2, Buffer.from(action, 'utf8'))),
        ]),
      ),
    ),
  ])

interface DecodedIdentifier {
  rootKeyId: string
  permissions: Permission[]
}

const readFields = (bytes: Buffer): Array<{ fieldNumber: number; content: Buffer }> => {
  const fields: Array<{ fieldNumber: number; content: Buffer }> = []
  let offset = 0
  const readVarint = () => {
    let result = 0
    let shift = 0
    for (;;) {
      const byte = bytes[offset++]
      if (byte === undefined || shift > 28) return undefined
      result |= (byte & 0x7f) << shift
      if (!(byte & 0x80)) return result >>> 0
      shift += 7
    }
  }
  while (offset < bytes.length) {
    const key = readVarint()
    // Only length-delimited fields appear in a MacaroonId; anything else is not one of ours.
    if (key === undefined || (key & 7) !== 2) return []
    const length = readVarint()
    if (length === undefined || offset + length > bytes.length) return []
    fields.push({ fieldNumber: key >>> 3, content: bytes.subarray(offset, offset + length) })
    offset += length
  }
  return fields
}

const decodeIdentifier = (identifier: Uint8Array): DecodedIdentifier | undefined => {
  const bytes = Buffer.from(identifier)
  if (bytes[0] !== identifierVersion) return undefined
  let rootKeyId: string | undefined
  const permissions: Permission[] = []
  for (const { fieldNumber, content } of readFields(bytes.subarray(1))) {
    if (fieldNumber === 2) rootKeyId = content.toString('utf8')
    if (fieldNumber !== 3) continue
    let entity = ''
    const actions: string[] = []
    for (const inner of readFields(content)) {
      if (inner.fieldNumber === 1) entity = inner.content.toString('utf8')
      if (inner.fieldNumber === 2) actions.push(inner.content.toString('utf8'))
    }
    for (const action of actions) permissions.push({ entity, action })
  }
  return rootKeyId === undefined ? undefined : { rootKeyId, permissions }
}

/**
 * Mints one LND-format macaroon (binary v2, location `lnd`, bakery v3 identifier listing the
 * operations) signed with `rootKey`, optionally with first-party caveats such as
 * `time-before 2030-01-01T00:00:00Z`.
 *
 * @example
 * ```ts
 * const hex = mintMacaroon({ rootKey, operations: macaroonOperations.admin }).toString('hex')
 * ```
 */
export function mintMacaroon(parameters: {
  rootKey: Uint8Array
  operations: Record<string, readonly string[]>
  caveats?: readonly string[]
}): Buffer {
  const identifier = encodeIdentifier(randomBytes(24), defaultRootKeyId, parameters.operations)
  const macaroon = macaroonLibrary.newMacaroon({
    identifier: new Uint8Array(identifier),
    location: 'lnd',
    rootKey: new Uint8Array(parameters.rootKey),
    version: 2,
  })
  for (const caveat of parameters.caveats ?? []) macaroon.addFirstPartyCaveat(caveat)
  return Buffer.from(macaroon.exportBinary())
}

/**
 * Checks a hex macaroon from gRPC metadata the way LND's macaroon service does, and returns LND's
 * error text on failure (LND answers these as gRPC status UNKNOWN with that text), or `undefined`
 * when the macaroon grants `required`.
 *
 * @example
 * ```ts
 * const failure = checkMacaroon({ rootKey, values: metadata.get('macaroon'), required: { entity: 'info', action: 'read' } })
 * ```
 */
export function checkMacaroon(parameters: {
  rootKey: Uint8Array
  values: ReadonlyArray<string | Buffer>
  required: Permission
  now?: Date
}): string | undefined {
  const { values, required } = parameters
  // LND: `if len(md["macaroon"]) != 1 { return fmt.Errorf("expected 1 macaroon, got %d", ...) }`
  if (values.length !== 1) return `expected 1 macaroon, got ${values.length}`
  const hex = String(values[0])
  if (!/^([0-9a-f]{2})*$/i.test(hex)) return 'encoding/hex: invalid byte in macaroon'
  let macaroon: ReturnType<typeof macaroonLibrary.importMacaroon>
  try {
    macaroon = macaroonLibrary.importMacaroon(new Uint8Array(Buffer.from(hex, 'hex')))
  } catch {
    return 'unable to unmarshal macaroon: packet too short'
  }
  const identifier = decodeIdentifier(macaroon.identifier)
  if (!identifier) return 'verification failed: invalid macaroon identifier'
  if (identifier.rootKeyId !== defaultRootKeyId) {
    return `cannot get macaroon: root key with id ${identifier.rootKeyId} doesn't exist`
  }
  const now = parameters.now ?? new Date()
  try {
    macaroon.verify(new Uint8Array(parameters.rootKey), (condition) => {
      // First-party caveats LND understands without extra context: `time-before <RFC 3339>`.
      const [name, ...rest] = condition.split(' ')
      if (name === 'time-before') {
        const deadline = Date.parse(rest.join(' '))
        return Number.isNaN(deadline) || now.getTime() >= deadline ? 'macaroon has expired' : null
      }
      return `caveat "${name}" not satisfied: unknown caveat`
    })
  } catch (error) {
    return `verification failed: ${(error as Error).message}`
  }
  const granted = identifier.permissions.some(
    (permission) => permission.entity === required.entity && permission.action === required.action,
  )
  return granted ? undefined : 'permission denied'
}
