// Registration only: each concern lives in its own file pair.
#include <napi.h>

#include "cenc.h"
#include "kms.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("CencCipher", keywarden::cenc::CencCipher::Define(env));
  exports.Set("cryptoInfo", Napi::Function::New<keywarden::cenc::CryptoInfo>(env, "cryptoInfo"));
  exports.Set("KmsDevice", keywarden::kms::KmsDevice::Define(env));
  exports.Set("kmsBuildInfo", Napi::Function::New<keywarden::kms::KmsBuildInfo>(env, "kmsBuildInfo"));
  exports.Set("parseUevent", Napi::Function::New<keywarden::kms::ParseUeventJs>(env, "parseUevent"));
  return exports;
}

}  // namespace

NODE_API_MODULE(keywarden, Init)
