// JS arguments of the CencCipher methods, read into the plain C++ types of cenc-map.h,
// and the coded errors thrown back. Runs on the JS thread only.
#ifndef KEYWARDEN_NATIVE_CENC_ARGS_H_
#define KEYWARDEN_NATIVE_CENC_ARGS_H_

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cenc-aes.h"
#include "cenc-map.h"

namespace keywarden::cenc {

// A JS Error with a catalogue `code` (src/errors/catalogue.ts) and, when known, `sample`.
Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message,
                       int64_t sample = -1);

// The caller's buffer, transformed in place.
struct DataArg {
  Napi::Uint8Array array;
  uint8_t* bytes;
  size_t length;
};

DataArg ParseData(const Napi::Value& value);
Key ParseKey(const Napi::Value& value);
// Views into the JS typed arrays of a SampleBatch object; valid during this call only.
BatchView ParseBatch(const Napi::Value& value);

// ValidateBatch, throwing its MapError as a coded JS Error.
MapSummary ValidateOrThrow(Napi::Env env, const BatchView& batch, size_t dataLen);

// A batch copied off the JS heap, so a worker thread can read it after the call returns.
class OwnedBatch {
 public:
  explicit OwnedBatch(const BatchView& source);
  OwnedBatch(const OwnedBatch&) = delete;
  OwnedBatch& operator=(const OwnedBatch&) = delete;
  const BatchView& view() const { return view_; }

 private:
  std::vector<uint32_t> samples_;
  std::vector<uint8_t> ivs_;
  std::vector<uint32_t> subsamples_;
  BatchView view_;
};

}  // namespace keywarden::cenc

#endif  // KEYWARDEN_NATIVE_CENC_ARGS_H_
