// Registration only: each concern lives in its own file pair.
#include <napi.h>

#include "cenc.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("CencCipher", keywarden::cenc::CencCipher::Define(env));
  exports.Set("cryptoInfo", Napi::Function::New<keywarden::cenc::CryptoInfo>(env, "cryptoInfo"));
  return exports;
}

}  // namespace

NODE_API_MODULE(keywarden, Init)
