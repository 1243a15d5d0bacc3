#include "cenc-map.h"

#include <algorithm>

namespace keywarden::cenc {

namespace {

constexpr uint32_t kMaxPatternField = 15;  // 4-bit fields in 'tenc' (§8.2)

MapError Fail(const char* code, std::string message, int64_t sample = -1) {
  return MapError{code, std::move(message), sample};
}

bool UsesPattern(Scheme scheme) {
  return scheme == Scheme::kCens || scheme == Scheme::kCbcs;
}

std::optional<MapError> ValidateShape(const BatchView& b) {
  if (b.samplesLen % kSampleFields != 0) {
    return Fail("NATIVE_BAD_ARGUMENT", "samples holds 4 uint32 per sample; its length " +
                                           std::to_string(b.samplesLen) +
                                           " is not a multiple of 4");
  }
  if (b.subsamplesLen % 2 != 0) {
    return Fail("NATIVE_BAD_ARGUMENT", "subsamples holds [clear, protected] pairs; its length " +
                                           std::to_string(b.subsamplesLen) + " is odd");
  }
  // 64-bit product: SampleCount() * 16 cannot wrap for any array a process can hold.
  if (static_cast<uint64_t>(b.ivsLen) < static_cast<uint64_t>(b.SampleCount()) * kIvBytes) {
    return Fail("MEDIA_BAD_IV", "ivs holds " + std::to_string(b.ivsLen) + " bytes, " +
                                    std::to_string(b.SampleCount()) + " samples need 16 each");
  }
  const Pattern& p = b.pattern;
  if (p.crypt > kMaxPatternField || p.skip > kMaxPatternField) {
    return Fail("NATIVE_BAD_PATTERN", "pattern " + std::to_string(p.crypt) + ":" +
                                          std::to_string(p.skip) + " exceeds the 4-bit fields");
  }
  // 0:N would encrypt nothing; Chromium and Bento4 disagree on its meaning, so refuse it.
  if (UsesPattern(b.scheme) && p.crypt == 0 && p.skip != 0) {
    return Fail("NATIVE_BAD_PATTERN", "pattern 0:" + std::to_string(p.skip) + " encrypts no block");
  }
  return std::nullopt;
}

// The subsample pairs of sample `i` must exist and fit inside it. A sum below the sample
// size is accepted and the rest stays clear, as Bento4 does; Chromium's
// VerifySubsamplesMatchSize demands equality. Callers wanting that can check in TS.
std::optional<MapError> ValidateSubsamples(const BatchView& b, size_t i, uint64_t size,
                                           MapSummary* out) {
  const uint32_t* s = b.Sample(i);
  const uint64_t first = s[2], count = s[3];
  if (first + count > b.subsamplesLen / 2) {
    return Fail("NATIVE_BAD_ARGUMENT", "subsamples " + std::to_string(first) + "+" +
                                           std::to_string(count) +
                                           " lie outside the subsample array",
                static_cast<int64_t>(i));
  }
  uint64_t covered = 0;  // stays below 2^34: it stops growing once past `size` (< 2^32)
  for (uint64_t k = first; k < first + count; ++k) {
    const uint64_t clear = b.subsamples[2 * k], prot = b.subsamples[2 * k + 1];
    covered += clear + prot;
    if (covered > size) {
      return Fail("MEDIA_SUBSAMPLE_OVERFLOW", "subsamples cover " + std::to_string(covered) +
                                                  "+ bytes of a " + std::to_string(size) +
                                                  "-byte sample",
                  static_cast<int64_t>(i));
    }
    out->scratchBytes = std::max(out->scratchBytes, PatternCryptBytes(prot, b.pattern));
  }
  return std::nullopt;
}

std::optional<MapError> ValidateSample(const BatchView& b, size_t i, size_t dataLen,
                                       MapSummary* out) {
  const uint32_t* s = b.Sample(i);
  const uint64_t offset = s[0], size = s[1];
  if (offset + size > dataLen) {
    return Fail("MEDIA_SAMPLE_OUT_OF_RANGE", "sample bytes " + std::to_string(offset) + ".." +
                                                 std::to_string(offset + size) + " lie outside " +
                                                 std::to_string(dataLen) + " bytes of data",
                static_cast<int64_t>(i));
  }
  if (s[3] == 0) {
    out->scratchBytes = std::max(out->scratchBytes, PatternCryptBytes(size, b.pattern));
    return std::nullopt;
  }
  return ValidateSubsamples(b, i, size, out);
}

}  // namespace

std::optional<Scheme> ParseScheme(const std::string& name) {
  if (name == "cenc") return Scheme::kCenc;
  if (name == "cbc1") return Scheme::kCbc1;
  if (name == "cens") return Scheme::kCens;
  if (name == "cbcs") return Scheme::kCbcs;
  return std::nullopt;
}

size_t PatternCryptBytes(size_t len, Pattern pattern) {
  const size_t blocks = len / kBlock;
  if (pattern.Contiguous()) return blocks * kBlock;
  const size_t span = pattern.crypt + pattern.skip;
  const size_t whole = blocks / span, rest = blocks % span;
  return (whole * pattern.crypt + std::min<size_t>(rest, pattern.crypt)) * kBlock;
}

std::optional<MapError> ValidateBatch(const BatchView& batch, size_t dataLen, MapSummary* out) {
  *out = MapSummary{};
  if (auto err = ValidateShape(batch)) return err;
  for (size_t i = 0; i < batch.SampleCount(); ++i) {
    if (auto err = ValidateSample(batch, i, dataLen, out)) return err;
  }
  // Only the pattern schemes gather; the others work in place.
  if (!UsesPattern(batch.scheme) || batch.pattern.Contiguous()) out->scratchBytes = 0;
  return std::nullopt;
}

}  // namespace keywarden::cenc
