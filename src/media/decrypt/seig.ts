import { findChildren, type Box } from '../box.js';
import { groupIndexPerSample, parseSampleToGroup } from '../boxes/index.js';

/** Per sample, the seig group_description_index of a stbl or traf; undefined without a seig sbgp. */
export function seigIndexPerSample(container: Box, sampleCount: number): Uint32Array | undefined {
  const sbgp = findChildren(container, 'sbgp')
    .map(parseSampleToGroup)
    .find((g) => g.groupingType === 'seig');
  return sbgp ? groupIndexPerSample(sbgp, sampleCount) : undefined;
}
