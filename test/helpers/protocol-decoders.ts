import { keywarden } from '../../src/protocol/generated/proto.js';
import type { MessageClass } from '../../src/protocol/index.js';

const v1 = keywarden.v1;

/**
 * Every protobuf decoder an untrusted byte string can reach (device and head-end). The
 * decoder unit tests and the protocol fuzz campaign share this one list, so a new message
 * cannot be forgotten by one of them.
 */
export const UNTRUSTED_DECODERS = [
  ['SignedMessage', v1.SignedMessage],
  ['SignedBody', v1.SignedBody],
  ['ProvisioningRequest', v1.ProvisioningRequest],
  ['ProvisioningResponse', v1.ProvisioningResponse],
  ['LicenseRequest', v1.LicenseRequest],
  ['LicenseResponse', v1.LicenseResponse],
  ['DomainJoinRequest', v1.DomainJoinRequest],
  ['DomainJoinResponse', v1.DomainJoinResponse],
  ['DomainLeaveRequest', v1.DomainLeaveRequest],
  ['DomainLeaveResponse', v1.DomainLeaveResponse],
  ['DomainMembersRequest', v1.DomainMembersRequest],
  ['DomainMembersResponse', v1.DomainMembersResponse],
  ['License', v1.License],
  ['RevocationList', v1.RevocationList],
  ['FleetCommand', v1.FleetCommand],
  ['CommandAck', v1.CommandAck],
  ['DeviceStatus', v1.DeviceStatus],
  ['ErrorReply', v1.ErrorReply],
  ['PsshData', v1.PsshData],
] as unknown as readonly [string, MessageClass<unknown>][];
