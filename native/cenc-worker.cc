#include "cenc-worker.h"

#include "cenc-crypt.h"

namespace keywarden::cenc {

BatchWorker::BatchWorker(Napi::Env env, std::shared_ptr<AesKeyRing> ring, const BatchView& batch,
                         const MapSummary& summary, const DataArg& data, bool encrypt)
    : Napi::AsyncWorker(env, "keywarden:cenc"),
      deferred_(Napi::Promise::Deferred::New(env)),
      pinned_(Napi::Persistent(static_cast<Napi::Object>(data.array))),
      ring_(std::move(ring)),
      batch_(batch),
      summary_(summary),
      data_(data.bytes),
      encrypt_(encrypt) {}

void BatchWorker::Execute() {
  std::optional<std::string> err = CryptBatch(*ring_, batch_.view(), summary_, encrypt_, data_);
  if (err) SetError(*err);
}

void BatchWorker::OnOK() { deferred_.Resolve(Env().Undefined()); }

void BatchWorker::OnError(const Napi::Error& error) {
  deferred_.Reject(CodedError(Env(), "NATIVE_CRYPTO_FAILED", error.Message()).Value());
}

}  // namespace keywarden::cenc
