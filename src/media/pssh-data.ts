import { kwError } from '../errors/index.js';
import { keywarden } from '../protocol/generated/proto.js';

/** The decoded data of keywarden's own pssh (proto/pssh.proto). */
export interface PsshData {
  keyIds: Uint8Array[];
  contentId: string;
  licenseUrl: string;
  policyHint: string;
  protectionScheme: string;
  /**
   * Live streams: an embedded leaf license (a serialized SignedMessage of type
   * EMBEDDED_LICENSE); empty when the pssh carries none. Opened on the device by
   * `openEmbeddedLicense` (src/agent/embedded-license.ts).
   */
  embeddedLicense: Uint8Array;
}

/** Encodes keywarden pssh data. */
export function encodePsshData(data: Partial<PsshData>): Uint8Array {
  return keywarden.v1.PsshData.encode({
    keyIds: data.keyIds ?? [],
    contentId: data.contentId ?? '',
    licenseUrl: data.licenseUrl ?? '',
    policyHint: data.policyHint ?? '',
    protectionScheme: data.protectionScheme ?? '',
    // Only live streams carry one; leaving the field out keeps other pssh data as it was.
    ...(data.embeddedLicense &&
      data.embeddedLicense.length > 0 && { embeddedLicense: data.embeddedLicense }),
  }).finish();
}

/** Decodes keywarden pssh data; HEADER_MALFORMED (6005) when it is not valid protobuf or a KID is not 16 bytes. */
export function decodePsshData(bytes: Uint8Array): PsshData {
  let msg: keywarden.v1.PsshData;
  try {
    msg = keywarden.v1.PsshData.decode(bytes);
  } catch (err) {
    throw kwError(
      'HEADER_MALFORMED',
      `keywarden pssh data is not valid protobuf: ${(err as Error).message}`,
      {},
      err,
    );
  }
  const keyIds = msg.keyIds.map((k) => Uint8Array.from(k));
  if (keyIds.some((k) => k.length !== 16))
    throw kwError('HEADER_MALFORMED', 'a key ID in the pssh data is not 16 bytes');
  return {
    keyIds,
    contentId: msg.contentId,
    licenseUrl: msg.licenseUrl,
    policyHint: msg.policyHint,
    protectionScheme: msg.protectionScheme,
    embeddedLicense: Uint8Array.from(msg.embeddedLicense),
  };
}
