// The interop comparison lives in src (the demo verifies with it too); tests use it from here.
export {
  digestSamples as listSamples,
  digestSamplesOf as listSamplesOf,
  samplesByTrack as byTrack,
  compareSamples,
  type SampleDigest,
} from '../../src/media/sample-digest.js';
