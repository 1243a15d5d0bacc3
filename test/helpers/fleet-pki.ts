/** A test operator PKI and signers for fleet messages (lists, commands). */
import { encodeMessage } from '../../src/protocol/codec.js';
import { MessageType, signMessage, type SignOptions } from '../../src/protocol/envelope.js';
import { keywarden } from '../../src/protocol/generated/proto.js';
import type { CallbackSigner } from '../../src/protocol/envelope.js';
import { signP256 } from '../../src/crypto/ecdsa.js';
import { issue, type Issued } from '../unit/protocol/test-pki.js';

const v1 = keywarden.v1;

/** Root, fleet publisher, a device, and a publisher under another root. */
export interface FleetPki {
  readonly root: Issued;
  readonly publisher: Issued;
  readonly device: Issued;
  readonly deviceId: string;
  readonly otherRoot: Issued;
  readonly otherPublisher: Issued;
  /** A CA under the root that issued `intermediatePublisher` (not directly under the root). */
  readonly intermediate: Issued;
  readonly intermediatePublisher: Issued;
}

export async function makeFleetPki(deviceId = 'dev-0001'): Promise<FleetPki> {
  const root = await issue('keywarden operator root CA', undefined, { ca: true });
  const publisher = await issue('keywarden fleet publisher', root);
  const device = await issue(deviceId, root);
  const otherRoot = await issue('evil root CA', undefined, { ca: true });
  const otherPublisher = await issue('keywarden fleet publisher', otherRoot);
  const intermediate = await issue('keywarden issuing CA', root, { ca: true });
  const intermediatePublisher = await issue('keywarden fleet publisher', intermediate);
  return {
    root,
    publisher,
    device,
    deviceId,
    otherRoot,
    otherPublisher,
    intermediate,
    intermediatePublisher,
  };
}

/** A signer for envelope signing with `cert` (its chain = [cert, ...extra]). */
export function keySigner(cert: Issued, extra: Issued[] = []) {
  return { privateKey: cert.privateKey, chain: [cert.der, ...extra.map((c) => c.der)] };
}

/** The device's CallbackSigner (what the agent would give the client). */
export function deviceSigner(pki: FleetPki): CallbackSigner {
  return {
    sign: (data) => Promise.resolve(signP256(pki.device.privateKey, data)),
    chain: [pki.device.der],
  };
}

const DAY = 86_400_000;

/** A RevocationList payload. */
export function listPayload(
  number: number,
  fields: Partial<keywarden.v1.IRevocationList> = {},
  nowMs = Date.now(),
): Uint8Array {
  return encodeMessage(
    v1.RevocationList,
    v1.RevocationList.create({
      number,
      issuedAtMs: nowMs,
      nextUpdateMs: nowMs + DAY,
      entries: [
        { kind: v1.RevocationEntry.Kind.DEVICE, value: 'dev-bad', revokedAtMs: nowMs, reason: 't' },
      ],
      ...fields,
    }),
  );
}

/** A signed RevocationList envelope. */
export function signedList(
  signer: Issued,
  number: number,
  fields: Partial<keywarden.v1.IRevocationList> = {},
  opts: SignOptions & { chain?: Issued[] } = {},
): Uint8Array {
  return signMessage(
    MessageType.FLEET_REVOCATION_LIST,
    listPayload(number, fields, opts.nowMs),
    keySigner(signer, opts.chain),
    opts,
  );
}

/** A signed FleetCommand envelope. */
export function signedCommand(
  signer: Issued,
  fields: Partial<keywarden.v1.IFleetCommand>,
  opts: SignOptions & { chain?: Issued[] } = {},
): Uint8Array {
  const now = opts.nowMs ?? Date.now();
  return signMessage(
    MessageType.FLEET_COMMAND,
    encodeMessage(
      v1.FleetCommand,
      v1.FleetCommand.create({
        id: 'cmd-1',
        deviceId: 'dev-0001',
        action: v1.FleetCommand.Action.REVOKE_LICENSE,
        argument: 'lic-1',
        expiresAtMs: now + 60_000,
        ...fields,
      }),
    ),
    keySigner(signer, opts.chain),
    opts,
  );
}
