// CencCipher: the JS class over one AES-128 content key, decrypting and encrypting
// ISO/IEC 23001-7 sample batches in place (cenc, cbc1, cens, cbcs). Typed in
// src/native/binding.ts, which is its only caller.
#ifndef KEYWARDEN_NATIVE_CENC_H_
#define KEYWARDEN_NATIVE_CENC_H_

#include <napi.h>

#include <memory>

#include "cenc-aes.h"

namespace keywarden::cenc {

class CencCipher : public Napi::ObjectWrap<CencCipher> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new CencCipher(key: Uint8Array(16))
  explicit CencCipher(const Napi::CallbackInfo& info);

 private:
  Napi::Value DecryptSync(const Napi::CallbackInfo& info) { return RunSync(info, false); }
  Napi::Value EncryptSync(const Napi::CallbackInfo& info) { return RunSync(info, true); }
  Napi::Value Decrypt(const Napi::CallbackInfo& info) { return RunAsync(info, false); }
  Napi::Value Encrypt(const Napi::CallbackInfo& info) { return RunAsync(info, true); }
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);

  Napi::Value RunSync(const Napi::CallbackInfo& info, bool encrypt);
  Napi::Value RunAsync(const Napi::CallbackInfo& info, bool encrypt);
  std::shared_ptr<AesKeyRing> OpenRing(Napi::Env env) const;

  // Null after close(). In-flight workers hold their own reference, so the key schedules
  // are freed when the last of them finishes.
  std::shared_ptr<AesKeyRing> ring_;
};

// cryptoInfo(): { openssl: string, cpuAes: boolean | null }
Napi::Value CryptoInfo(const Napi::CallbackInfo& info);

}  // namespace keywarden::cenc

#endif  // KEYWARDEN_NATIVE_CENC_H_
