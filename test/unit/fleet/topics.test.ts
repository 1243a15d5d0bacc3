import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  fleetTopics,
  isOfflineMarker,
  MemoryFleetStateStore,
  OFFLINE_MARKER,
  parseFleetState,
  EMPTY_FLEET_STATE,
} from '../../../src/fleet/index.js';

describe('fleet topics', () => {
  it('builds the topics under a prefix', () => {
    expect(fleetTopics('op/a/', 'dev1')).toEqual({
      revocations: 'op/a/fleet/revocations',
      command: 'op/a/devices/dev1/cmd',
      ack: 'op/a/devices/dev1/ack',
      status: 'op/a/devices/dev1/status',
    });
    expect(fleetTopics('', 'd').revocations).toBe('fleet/revocations');
  });

  it('refuses wildcards and slashes in ids', () => {
    for (const id of ['a/b', '+', '#', '']) expect(() => fleetTopics('p', id)).toThrow(RangeError);
    expect(() => fleetTopics('p/#', 'd')).toThrow(RangeError);
  });

  it('the offline marker is the 7 ASCII bytes "offline"', () => {
    expect(Buffer.from(OFFLINE_MARKER).toString('hex')).toBe('6f66666c696e65');
    expect(isOfflineMarker(Buffer.from('offline'))).toBe(true);
    expect(isOfflineMarker(Buffer.from('online'))).toBe(false);
  });
});

describe('backoff', () => {
  it('grows exponentially with jitter and a cap', () => {
    const p = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2 };
    expect(backoffDelay(0, p, () => 0)).toBe(50);
    expect(backoffDelay(0, p, () => 1)).toBe(100);
    expect(backoffDelay(3, p, () => 1)).toBe(800);
    expect(backoffDelay(10, p, () => 1)).toBe(1000);
    expect(backoffDelay(10, p, () => 0)).toBe(500);
    expect(backoffDelay(1e6, p, () => 0.5)).toBe(750);
  });
});

describe('state', () => {
  it('memory store round-trips and parse checks shape', async () => {
    const s = new MemoryFleetStateStore();
    expect(await s.get()).toBeUndefined();
    await s.set({ ...EMPTY_FLEET_STATE, listNumber: 4, nonces: [['AA==', 1, 2]] });
    expect(parseFleetState(await s.get()).listNumber).toBe(4);
    expect(() => parseFleetState({ listNumber: -1 })).toThrow();
    expect(() => parseFleetState(undefined)).toThrow();
  });
});
