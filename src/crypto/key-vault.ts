import {
  createHmac,
  createPublicKey,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import path from 'node:path';
import { isKeywardenError, kwError } from '../errors/index.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { NODE_FS, type FileSystem } from '../io/fs.js';
import { aeadUnwrap, aeadWrap } from './aead.js';
import { generateP256KeyPair, pkcs8Of, privateKeyFromPkcs8, signP256 } from './ecdsa.js';
import { agreementOf, type KeyAgreement } from './ecies.js';
import { majoritySubsets, type HardwareIdentity } from './hardware-identity.js';

/** The device certificate the provisioning authority issued. */
export interface DeviceCertificate {
  /** Device id (certificate subject). */
  readonly deviceId: string;
  /** Device certificate, DER. */
  readonly certificate: Uint8Array;
  /** Issuing CAs, DER, towards the operator root. */
  readonly chain: readonly Uint8Array[];
  /** The agent version the certificate was issued to (re-individualize after an update). */
  readonly agentVersion?: string;
}

/** What {@link KeyVault.open} found. */
export interface VaultStatus {
  /** 'empty': no device key yet; 'ready': key loaded. */
  readonly state: 'empty' | 'ready';
  /** Identity sources that changed while a majority held (the vault re-bound itself). */
  readonly changedSources: readonly string[];
}

/**
 * Where the device private key lives. The software implementation keeps it encrypted at
 * rest; a TPM or OP-TEE backend implements the same interface with a non-exportable key
 * (DESIGN.md "Threat model"). The private key never leaves an implementation.
 */
export interface KeyVault {
  /** Protection level, reported in attestation. */
  readonly securityLevel: 'software' | 'tee' | 'hardware';
  /**
   * Loads the vault. Throws VAULT_IDENTITY_MISMATCH when a majority of the hardware identity
   * changed (or the vault came from another device), VAULT_CORRUPT when unreadable.
   */
  open(): Promise<VaultStatus>;
  /** The device public key, creating the key pair on first use. */
  getOrCreateDeviceKey(): Promise<KeyObject>;
  /** Discards the key pair and certificate and creates a new key pair. */
  resetDeviceKey(): Promise<KeyObject>;
  /** ECDSA P-256 / SHA-256 over `data`, DER signature. */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** ECDH with the device key, for ECIES unwrapping. */
  keyAgreement(): KeyAgreement;
  /** Stores the device certificate (after individualization). */
  storeCertificate(cert: DeviceCertificate): Promise<void>;
  /** The stored device certificate, if any. */
  loadCertificate(): DeviceCertificate | undefined;
  /**
   * A 32-byte key for `purpose` (e.g. "license-store"), bound to this device and stable
   * across re-individualization. Data sealed with it cannot be opened on another device.
   * Available once {@link open} found a vault or a device key was created.
   */
  storageKey(purpose: string): Uint8Array;
}

interface VaultFile {
  version: 1;
  salt: string;
  slots: { sources: string[]; wrapped: string }[];
  tags: Record<string, string>;
  deviceKey: string;
  /** Device-bound secret behind storageKey(), wrapped under the DEK. */
  storageSecret?: string;
  certificate?: { deviceId: string; der: string; chain: string[]; agentVersion?: string };
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Buffer => Buffer.from(s, 'base64');
const DEVICE_KEY_CONTEXT = 'keywarden/v1 vault device-key';
const STORAGE_SECRET_CONTEXT = 'keywarden/v1 vault storage-secret';

/** Options of a {@link SoftwareKeyVault}. */
export interface SoftwareKeyVaultOptions {
  /** The vault file (mode 0600), e.g. `<state>/device-key.json`. */
  readonly file: string;
  /** The current hardware identity. */
  readonly identity: HardwareIdentity;
  /** File system of the vault file (default {@link NODE_FS}). */
  readonly fs?: FileSystem;
}

/**
 * A key vault in a file. A random data key (DEK) encrypts the PKCS#8 device key with
 * AES-256-GCM; the DEK itself is wrapped under a key derived with HKDF-SHA256 (RFC 5869)
 * from each majority subset of the hardware identity sources, so the vault opens on this
 * hardware only, and survives a minority of sources changing.
 */
export class SoftwareKeyVault implements KeyVault {
  readonly securityLevel = 'software' as const;
  private privateKey: KeyObject | undefined;
  private dek: Uint8Array | undefined;
  private salt: Uint8Array = randomBytes(32);
  private cert: DeviceCertificate | undefined;
  private storageSecret: Uint8Array | undefined;

  constructor(private readonly opts: SoftwareKeyVaultOptions) {}

  async open(): Promise<VaultStatus> {
    const file = await this.readFile();
    if (!file) return { state: 'empty', changedSources: [] };
    this.salt = unb64(file.salt);
    const dek = this.openDek(file);
    try {
      this.privateKey = privateKeyFromPkcs8(
        aeadUnwrap(dek, unb64(file.deviceKey), DEVICE_KEY_CONTEXT),
      );
    } catch (err) {
      throw kwError(
        'VAULT_CORRUPT',
        'the device key in the vault cannot be read',
        { file: this.opts.file },
        err,
      );
    }
    this.dek = dek;
    let addSecret = false;
    try {
      this.storageSecret = file.storageSecret
        ? aeadUnwrap(dek, unb64(file.storageSecret), STORAGE_SECRET_CONTEXT)
        : undefined;
    } catch (err) {
      throw kwError('VAULT_CORRUPT', 'the storage secret in the vault cannot be read', {}, err);
    }
    if (!this.storageSecret) {
      this.storageSecret = randomBytes(32); // a vault written before storage keys existed
      addSecret = true;
    }
    this.cert = file.certificate && {
      deviceId: file.certificate.deviceId,
      certificate: unb64(file.certificate.der),
      chain: file.certificate.chain.map(unb64),
      agentVersion: file.certificate.agentVersion,
    };
    const changed = this.changedSources(file, dek);
    if (changed.length > 0 || addSecret) await this.save(); // re-bind to the current identity
    return { state: 'ready', changedSources: changed };
  }

  async getOrCreateDeviceKey(): Promise<KeyObject> {
    if (!this.privateKey) return this.resetDeviceKey();
    return createPublicKey(this.privateKey);
  }

  async resetDeviceKey(): Promise<KeyObject> {
    const pair = generateP256KeyPair();
    this.privateKey = pair.privateKey;
    this.dek = randomBytes(32);
    this.salt = randomBytes(32);
    this.cert = undefined;
    this.storageSecret ??= randomBytes(32); // kept: stored data survives re-individualization
    await this.save();
    return pair.publicKey;
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    return signP256(this.requireKey(), data);
  }

  keyAgreement(): KeyAgreement {
    return agreementOf(this.requireKey());
  }

  async storeCertificate(cert: DeviceCertificate): Promise<void> {
    this.requireKey();
    this.cert = cert;
    await this.save();
  }

  loadCertificate(): DeviceCertificate | undefined {
    return this.cert;
  }

  storageKey(purpose: string): Uint8Array {
    if (!this.storageSecret)
      throw kwError('NOT_INDIVIDUALIZED', 'the key vault is not open and holds no device key');
    return new Uint8Array(
      hkdfSync('sha256', this.storageSecret, new Uint8Array(0), `keywarden/v1 ${purpose}`, 32),
    );
  }

  private requireKey(): KeyObject {
    if (!this.privateKey) throw kwError('NOT_INDIVIDUALIZED', 'the device has no key pair yet');
    return this.privateKey;
  }

  private slotKey(sources: readonly string[]): Uint8Array | undefined {
    const parts = sources.map((n) => this.opts.identity.sources[n]);
    if (parts.some((p) => p === undefined)) return undefined;
    const ikm = Buffer.concat(parts as Uint8Array[]);
    return new Uint8Array(
      hkdfSync('sha256', ikm, this.salt, `keywarden/v1 vault ${sources.join(',')}`, 32),
    );
  }

  private openDek(file: VaultFile): Uint8Array {
    for (const slot of file.slots) {
      const key = this.slotKey(slot.sources);
      if (!key) continue;
      try {
        return aeadUnwrap(
          key,
          unb64(slot.wrapped),
          `keywarden/v1 vault-slot ${slot.sources.join(',')}`,
        );
      } catch (err) {
        if (!isKeywardenError(err, 'KEY_UNWRAP_FAILED')) throw err;
      }
    }
    throw kwError(
      'VAULT_IDENTITY_MISMATCH',
      'the key vault does not open with this hardware identity',
      {
        file: this.opts.file,
      },
    );
  }

  private tag(dek: Uint8Array, name: string): Buffer {
    return createHmac('sha256', dek)
      .update(this.opts.identity.sources[name] ?? Buffer.alloc(0))
      .digest();
  }

  private changedSources(file: VaultFile, dek: Uint8Array): string[] {
    const names = new Set([...Object.keys(file.tags), ...Object.keys(this.opts.identity.sources)]);
    return [...names].filter((n) => {
      const stored = file.tags[n];
      return !stored || !timingSafeEqual(unb64(stored), this.tag(dek, n));
    });
  }

  private async save(): Promise<void> {
    const dek = this.dek!;
    const names = Object.keys(this.opts.identity.sources);
    const file: VaultFile = {
      version: 1,
      salt: b64(this.salt),
      slots: majoritySubsets(names).map((sources) => ({
        sources,
        wrapped: b64(
          aeadWrap(this.slotKey(sources)!, dek, `keywarden/v1 vault-slot ${sources.join(',')}`),
        ),
      })),
      tags: Object.fromEntries(names.map((n) => [n, b64(this.tag(dek, n))])),
      deviceKey: b64(aeadWrap(dek, pkcs8Of(this.requireKey()), DEVICE_KEY_CONTEXT)),
      ...(this.storageSecret && {
        storageSecret: b64(aeadWrap(dek, this.storageSecret, STORAGE_SECRET_CONTEXT)),
      }),
      ...(this.cert && {
        certificate: {
          deviceId: this.cert.deviceId,
          der: b64(this.cert.certificate),
          chain: this.cert.chain.map(b64),
          agentVersion: this.cert.agentVersion,
        },
      }),
    };
    const fs = this.opts.fs ?? NODE_FS;
    await fs.mkdir(path.dirname(this.opts.file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.opts.file, Buffer.from(JSON.stringify(file)), 0o600, fs);
  }

  private async readFile(): Promise<VaultFile | undefined> {
    let text: string;
    try {
      text = (await (this.opts.fs ?? NODE_FS).readFile(this.opts.file)).toString('utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw kwError('IO_FAILED', `cannot read the key vault ${this.opts.file}`, {}, err);
    }
    return parseVaultFile(text, this.opts.file);
  }
}

function parseVaultFile(text: string, file: string): VaultFile {
  try {
    const v = JSON.parse(text) as VaultFile;
    if (
      v.version !== 1 ||
      typeof v.salt !== 'string' ||
      !Array.isArray(v.slots) ||
      typeof v.deviceKey !== 'string'
    ) {
      throw new Error('unexpected layout');
    }
    return v;
  } catch (err) {
    throw kwError('VAULT_CORRUPT', `the key vault ${file} is unreadable`, { file }, err);
  }
}
