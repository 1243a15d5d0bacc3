#include "cenc.h"

#include <openssl/crypto.h>

#include "cenc-args.h"
#include "cenc-crypt.h"
#include "cenc-worker.h"

namespace keywarden::cenc {

Napi::Function CencCipher::Define(Napi::Env env) {
  return DefineClass(env, "CencCipher",
                     {
                         InstanceMethod<&CencCipher::DecryptSync>("decryptSync"),
                         InstanceMethod<&CencCipher::EncryptSync>("encryptSync"),
                         InstanceMethod<&CencCipher::Decrypt>("decrypt"),
                         InstanceMethod<&CencCipher::Encrypt>("encrypt"),
                         InstanceMethod<&CencCipher::Close>("close"),
                         InstanceAccessor<&CencCipher::Closed>("closed"),
                     });
}

CencCipher::CencCipher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CencCipher>(info) {
  Key key = ParseKey(info[0]);
  ring_ = std::make_shared<AesKeyRing>(key);
  OPENSSL_cleanse(key.data(), key.size());
  // Build the first key schedule now, so that an OpenSSL failure shows at construction.
  if (ring_->Acquire().get() == nullptr) {
    ring_.reset();
    throw CodedError(info.Env(), "NATIVE_CRYPTO_FAILED",
                     "cannot create an AES context: " + OpenSslErrors());
  }
}

std::shared_ptr<AesKeyRing> CencCipher::OpenRing(Napi::Env env) const {
  if (!ring_) throw CodedError(env, "NATIVE_CLOSED", "the cipher was closed");
  return ring_;
}

Napi::Value CencCipher::RunSync(const Napi::CallbackInfo& info, bool encrypt) {
  Napi::Env env = info.Env();
  std::shared_ptr<AesKeyRing> ring = OpenRing(env);
  const BatchView batch = ParseBatch(info[1]);
  const DataArg data = ParseData(info[0]);
  const MapSummary summary = ValidateOrThrow(env, batch, data.length);
  if (std::optional<std::string> err = CryptBatch(*ring, batch, summary, encrypt, data.bytes)) {
    throw CodedError(env, "NATIVE_CRYPTO_FAILED", *err);
  }
  return env.Undefined();
}

// The map is validated here, on the JS thread, so a bad map throws synchronously and the
// worker never starts.
Napi::Value CencCipher::RunAsync(const Napi::CallbackInfo& info, bool encrypt) {
  Napi::Env env = info.Env();
  std::shared_ptr<AesKeyRing> ring = OpenRing(env);
  const BatchView batch = ParseBatch(info[1]);
  const DataArg data = ParseData(info[0]);
  const MapSummary summary = ValidateOrThrow(env, batch, data.length);
  auto* worker = new BatchWorker(env, std::move(ring), batch, summary, data, encrypt);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value CencCipher::Close(const Napi::CallbackInfo& info) {
  ring_.reset();
  return info.Env().Undefined();
}

Napi::Value CencCipher::Closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !ring_);
}

Napi::Value CryptoInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("openssl", OpenSslVersion());
  const int aes = CpuHasAes();
  out.Set("cpuAes", aes < 0 ? env.Null() : Napi::Boolean::New(env, aes == 1));
  return out;
}

}  // namespace keywarden::cenc
