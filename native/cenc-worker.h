// The async half of CencCipher: one AsyncWorker per batch, settling a Promise.
#ifndef KEYWARDEN_NATIVE_CENC_WORKER_H_
#define KEYWARDEN_NATIVE_CENC_WORKER_H_

#include <napi.h>

#include <memory>

#include "cenc-aes.h"
#include "cenc-args.h"
#include "cenc-map.h"

namespace keywarden::cenc {

// Runs CryptBatch on a libuv worker thread. Everything Execute() reads is plain C++ built on
// the JS thread: the copied map, the key ring (shared, so close() cannot free it under us)
// and the data pointer, whose buffer stays pinned by a reference until the Promise settles.
class BatchWorker : public Napi::AsyncWorker {
 public:
  // `batch` must already have passed ValidateBatch against `data`.
  BatchWorker(Napi::Env env, std::shared_ptr<AesKeyRing> ring, const BatchView& batch,
              const MapSummary& summary, const DataArg& data, bool encrypt);

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference pinned_;
  std::shared_ptr<AesKeyRing> ring_;
  OwnedBatch batch_;
  MapSummary summary_;
  uint8_t* data_;
  bool encrypt_;
};

}  // namespace keywarden::cenc

#endif  // KEYWARDEN_NATIVE_CENC_WORKER_H_
