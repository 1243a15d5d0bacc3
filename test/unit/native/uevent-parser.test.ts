/**
 * The uevent parser (native/uevent.cc) through parseUevent(): the kernel's netlink format,
 * what it must refuse (other subsystems, libudev's format, malformed or oversized buffers),
 * and thousands of random and mutated buffers, none of which may throw.
 */
import { randomBytes, randomInt } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { parseUevent } from '../../../src/native/binding.js';
import { codeOf } from '../../helpers/codes.js';

const DEVPATH = '/devices/pci0000:00/0000:00:02.0/drm/card0';

/** The kernel's bytes: every field NUL-terminated. */
function raw(...fields: string[]): Buffer {
  return Buffer.from(fields.map((f) => `${f}\0`).join(''), 'latin1');
}

function kernelEvent(extra: string[] = [], action = 'change', devpath = DEVPATH): Buffer {
  return raw(
    `${action}@${devpath}`,
    `ACTION=${action}`,
    `DEVPATH=${devpath}`,
    'SUBSYSTEM=drm',
    ...extra,
    'DEVNAME=dri/card0',
    'DEVTYPE=drm_minor',
    'MAJOR=226',
    'MINOR=0',
    'SEQNUM=2716',
  );
}

describe('parseUevent: kernel format', () => {
  it('reads a connector property change', () => {
    expect(parseUevent(kernelEvent(['HOTPLUG=1', 'CONNECTOR=42', 'PROPERTY=77']))).toEqual({
      action: 'change',
      devpath: DEVPATH,
      subsystem: 'drm',
      hotplug: true,
      connector: 42,
      property: 77,
      seqnum: 2716,
    });
  });

  it('reads a bare hot-plug and an add event', () => {
    expect(parseUevent(kernelEvent(['HOTPLUG=1']))).toMatchObject({ hotplug: true });
    const add = parseUevent(kernelEvent([], 'add'));
    expect(add).toMatchObject({ action: 'add', hotplug: false });
    expect(add?.connector).toBeUndefined();
    expect(add?.property).toBeUndefined();
  });

  it('accepts a Buffer slice and a plain Uint8Array', () => {
    const bytes = kernelEvent(['HOTPLUG=1']);
    const padded = Buffer.concat([Buffer.from('xx'), bytes]);
    expect(parseUevent(padded.subarray(2))).toMatchObject({ hotplug: true });
    expect(parseUevent(new Uint8Array(bytes))).toMatchObject({ hotplug: true });
  });

  it('reads the largest ids and a seqnum up to 2^53-1', () => {
    const e = parseUevent(
      raw(
        `change@${DEVPATH}`,
        'ACTION=change',
        `DEVPATH=${DEVPATH}`,
        'SUBSYSTEM=drm',
        'CONNECTOR=4294967295',
        'SEQNUM=9007199254740991',
      ),
    );
    expect(e).toMatchObject({ connector: 4294967295, seqnum: 9007199254740991 });
  });
});

describe('parseUevent: refusals are null', () => {
  const cases: [string, Uint8Array][] = [
    [
      'another subsystem',
      raw('add@/devices/usb1', 'ACTION=add', 'DEVPATH=/devices/usb1', 'SUBSYSTEM=usb'),
    ],
    [
      'libudev format',
      Buffer.concat([
        Buffer.from('libudev\0'),
        Buffer.from([0xca, 0xfe, 0xed, 0xfe]),
        kernelEvent(),
      ]),
    ],
    ['empty', new Uint8Array(0)],
    ['no NUL at all', Buffer.from(`change@${DEVPATH}ACTION=changeSUBSYSTEM=drm`)],
    ['truncated mid-field', kernelEvent(['HOTPLUG=1']).subarray(0, 60)],
    ['truncated before SUBSYSTEM', raw(`change@${DEVPATH}`, 'ACTION=change', `DEVPATH=${DEVPATH}`)],
    ['no @ header', raw('ACTION=change', `DEVPATH=${DEVPATH}`, 'SUBSYSTEM=drm')],
    [
      'header disagrees',
      raw(`remove@${DEVPATH}`, 'ACTION=change', `DEVPATH=${DEVPATH}`, 'SUBSYSTEM=drm'),
    ],
    ['field without =', kernelEvent(['HOTPLUG'])],
    ['empty field', Buffer.concat([kernelEvent(), Buffer.from('\0')])],
    ['bad number', kernelEvent(['CONNECTOR=4x'])],
    ['negative number', kernelEvent(['CONNECTOR=-1'])],
    ['id over 32 bits', kernelEvent(['PROPERTY=4294967296'])],
    [
      'seqnum over 2^53',
      raw(
        `change@${DEVPATH}`,
        'ACTION=change',
        `DEVPATH=${DEVPATH}`,
        'SUBSYSTEM=drm',
        'SEQNUM=9007199254740992',
      ),
    ],
    ['duplicate key', kernelEvent(['CONNECTOR=1', 'CONNECTOR=2'])],
    ['HOTPLUG=2', kernelEvent(['HOTPLUG=2'])],
    ['control character', kernelEvent(['X=a\x01b'])],
    ['high bytes', kernelEvent(['X=\xff'])],
    ['huge', Buffer.concat([kernelEvent(), raw(`PAD=${'a'.repeat(20_000)}`)])],
  ];
  it.each(cases)('%s', (_label, bytes) => {
    expect(parseUevent(bytes)).toBeNull();
  });

  it('throws NATIVE_BAD_ARGUMENT for a value that is not a Uint8Array', () => {
    expect(codeOf(() => parseUevent('change@/x' as unknown as Uint8Array))).toBe(
      'NATIVE_BAD_ARGUMENT',
    );
    expect(codeOf(() => parseUevent(new Uint16Array(4) as unknown as Uint8Array))).toBe(
      'NATIVE_BAD_ARGUMENT',
    );
  });
});

describe('parseUevent: random input never throws', () => {
  it('5,000 random buffers', () => {
    let parsed = 0;
    for (let i = 0; i < 5000; i++) {
      const bytes = randomBytes(randomInt(0, 600));
      if (parseUevent(bytes) !== null) parsed++;
    }
    expect(parsed).toBe(0);
  });

  it('5,000 mutated kernel events: any result is null or well-formed', () => {
    const seed = kernelEvent(['HOTPLUG=1', 'CONNECTOR=42', 'PROPERTY=77']);
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(seed);
      const edits = randomInt(1, 6);
      for (let e = 0; e < edits; e++) {
        const at = randomInt(bytes.length);
        const op = randomInt(3);
        if (op === 0) bytes[at] = randomInt(256);
        else if (op === 1) bytes[at] = 0;
        else bytes[at] = '='.charCodeAt(0);
      }
      const cut = randomInt(4) === 0 ? bytes.subarray(0, randomInt(bytes.length + 1)) : bytes;
      const e = parseUevent(cut);
      if (e === null) continue;
      expect(e.subsystem).toBe('drm');
      expect(e.action.length).toBeGreaterThan(0);
      expect(e.devpath.length).toBeGreaterThan(0);
      if (e.connector !== undefined) expect(Number.isInteger(e.connector)).toBe(true);
    }
  });
});
