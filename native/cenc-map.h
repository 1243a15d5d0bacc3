// The sample map of one batch (see src/media/sample-crypto.ts: SampleBatch) as plain C++,
// and its validation. Nothing here touches Node-API, so a worker thread may use it.
#ifndef KEYWARDEN_NATIVE_CENC_MAP_H_
#define KEYWARDEN_NATIVE_CENC_MAP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace keywarden::cenc {

constexpr size_t kBlock = 16;  // AES block, and the unit of the §9.6 pattern.
constexpr size_t kIvBytes = 16;
constexpr size_t kSampleFields = 4;  // offset, size, firstSubsample, subsampleCount

// ISO/IEC 23001-7 §4.2 scheme types, by their AES mode.
enum class Scheme { kCenc, kCbc1, kCens, kCbcs };

std::optional<Scheme> ParseScheme(const std::string& name);

// §9.6: crypt_byte_block and skip_byte_block, 4 bits each in 'tenc'.
struct Pattern {
  uint32_t crypt = 0;
  uint32_t skip = 0;
  // 0:0 (and N:0) mean "every block", so the encrypted blocks are contiguous.
  bool Contiguous() const { return skip == 0; }
};

// A read-only view of the batch arrays; the owner keeps them alive.
struct BatchView {
  Scheme scheme = Scheme::kCenc;
  Pattern pattern;
  const uint32_t* samples = nullptr;  // kSampleFields per sample
  size_t samplesLen = 0;              // uint32 elements
  const uint8_t* ivs = nullptr;
  size_t ivsLen = 0;                  // bytes
  const uint32_t* subsamples = nullptr;  // [clear, protected] pairs
  size_t subsamplesLen = 0;              // uint32 elements

  size_t SampleCount() const { return samplesLen / kSampleFields; }
  const uint32_t* Sample(size_t i) const { return samples + i * kSampleFields; }
  const uint8_t* Iv(size_t i) const { return ivs + i * kIvBytes; }
};

// A rejected map: `code` is a catalogue name from src/errors/catalogue.ts.
struct MapError {
  const char* code;
  std::string message;
  int64_t sample;  // -1 when the error is not about one sample
};

// What the crypt pass needs to know once the map is proven sound.
struct MapSummary {
  size_t scratchBytes = 0;  // largest gather buffer any protected range needs
};

// Checks every offset, length and sum against `dataLen` before any byte is touched.
std::optional<MapError> ValidateBatch(const BatchView& batch, size_t dataLen, MapSummary* out);

// Bytes of the §9.6 encrypted blocks in a protected range of `len` bytes.
size_t PatternCryptBytes(size_t len, Pattern pattern);

}  // namespace keywarden::cenc

#endif  // KEYWARDEN_NATIVE_CENC_MAP_H_
