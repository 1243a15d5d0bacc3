import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Individualizer } from '../../agent/individualization.js';
import { LicenseExchange } from '../../agent/license-exchange.js';
import { fixedSource, readHardwareIdentity } from '../../crypto/hardware-identity.js';
import { SoftwareKeyVault } from '../../crypto/key-vault.js';
import { isKeywardenError } from '../../errors/index.js';
import { decryptFile } from '../../media/decrypt/index.js';
import { inspectFile } from '../../media/inspect.js';
import { packageFile } from '../../media/package/packager.js';
import { compareSamples, digestSamples } from '../../media/sample-digest.js';

/** Prints one demo line; returns whether the check held. */
export type DemoLine = (ok: boolean, text: string) => boolean;

type HeadendModule = typeof import('../../headend/index.js');

/** The head-end is optional on a device install (`--omit=optional`): then this part is skipped. */
async function loadHeadend(): Promise<HeadendModule | undefined> {
  try {
    return await import('../../headend/index.js');
  } catch {
    return undefined;
  }
}

/**
 * The operator-to-device flow on loopback: a head-end with a rental policy and a content
 * key, a device that individualizes with its own vault, a license for the packaged clip
 * whose key decrypts it, and the device's revocation refusing the next license.
 */
export async function headendFlow(clip: string, work: string, line: DemoLine): Promise<number> {
  const mod = await loadHeadend();
  if (!mod) {
    process.stdout.write('  skip head-end flow (its optional packages are not installed)\n');
    return 0;
  }
  const headend = await mod.Headend.open({ dataDir: path.join(work, 'headend'), env: {} });
  const server = await mod.startHeadendServer(headend, { port: 0, host: '127.0.0.1' });
  let failed = 0;
  const check = (ok: boolean, text: string): void => {
    if (!line(ok, text)) failed++;
  };
  try {
    const admin = headend.admin;
    admin.setPolicy('rental', {
      'rental-duration': '48h',
      'playback-duration': '24h',
      'can-persist': 'true',
    });
    const kid = randomBytes(16);
    const added = admin.addContentKey({ kid, contentId: 'demo-rental', policy: 'rental' });
    const key = Buffer.from(added.key ?? '', 'hex');
    const enc = path.join(work, 'licensed.mp4');
    await packageFile({
      input: clip,
      output: enc,
      scheme: 'cbcs',
      key: { kid, key },
      contentId: 'demo-rental',
      licenseUrl: `${server.url}/v1/license`,
    });
    check(
      true,
      `head-end on ${server.url}: operator root CA, rental policy, content key; clip packaged (cbcs)`,
    );

    const device = await individualize(work, server.url, headend.rootCertificate);
    check(
      device.creds.deviceId.length > 0,
      `device individualized: id ${device.creds.deviceId}, key in a hardware-bound vault`,
    );

    const info = await inspectFile(enc);
    const licenseUrl = info.pssh.find((p) => p.keywarden)?.keywarden?.licenseUrl ?? '';
    const exchange = new LicenseExchange({
      licenseUrl,
      credentials: device.creds,
      trustedRoot: headend.rootCertificate,
    });
    const got = await exchange.acquire({ keyIds: [kid], contentId: 'demo-rental' });
    const dec = path.join(work, 'licensed-clear.mp4');
    await decryptFile(enc, dec, {
      keys: [...got.keys].map(([k, v]) => ({ kid: Buffer.from(k, 'hex'), key: v })),
    });
    const problems = compareSamples(await digestSamples(dec), await digestSamples(clip));
    check(
      problems.length === 0,
      `license ${got.license.id} from the URL in the pssh; its key decrypts the clip sample for sample`,
    );

    admin.revokeDevice(device.creds.deviceId, 'demo: box reported stolen');
    try {
      await exchange.acquire({ keyIds: [kid], contentId: 'demo-rental' });
      check(false, 'a revoked device still got a license');
    } catch (err) {
      check(
        isKeywardenError(err, 'DEVICE_REVOKED'),
        `after revocation the license server refuses: ${isKeywardenError(err) ? `error ${err.number} ${err.code}` : String(err)}`,
      );
    }
  } finally {
    await server.close();
    headend.close();
  }
  return failed;
}

async function individualize(work: string, baseUrl: string, root: Uint8Array) {
  // A demo device: its hardware identity is made up, so the demo runs on any machine.
  const identity = await readHardwareIdentity([
    fixedSource('machine-id', randomBytes(16).toString('hex')),
    fixedSource('board-serial', randomBytes(8).toString('hex')),
    fixedSource('cpu-serial', randomBytes(8).toString('hex')),
  ]);
  await mkdir(path.join(work, 'device'), { recursive: true });
  const vault = new SoftwareKeyVault({ file: path.join(work, 'device', 'vault.json'), identity });
  const individualizer = new Individualizer({
    provisioningUrl: `${baseUrl}/v1/provision`,
    vault,
    identity,
    trustedRoot: root,
    agentVersion: '0.1.0',
  });
  const creds = await individualizer.ensureIndividualized();
  return { creds };
}
