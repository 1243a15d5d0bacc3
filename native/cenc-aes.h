// AES-128 for one content key over Node's bundled OpenSSL (EVP, so AES-NI/VAES/ARMv8-CE
// are used when the CPU has them). Not thread-safe: one AesKeySchedule serves one thread at
// a time; AesKeyRing hands them out.
#ifndef KEYWARDEN_NATIVE_CENC_AES_H_
#define KEYWARDEN_NATIVE_CENC_AES_H_

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace keywarden::cenc {

constexpr size_t kKeyBytes = 16;
using Key = std::array<uint8_t, kKeyBytes>;

// Three EVP contexts keyed once: CTR (same in both directions), CBC encrypt, CBC decrypt.
// Per sample only the IV is re-initialised.
class AesKeySchedule {
 public:
  static std::unique_ptr<AesKeySchedule> Create(const Key& key);
  ~AesKeySchedule();
  AesKeySchedule(const AesKeySchedule&) = delete;
  AesKeySchedule& operator=(const AesKeySchedule&) = delete;

  // Starts a CTR keystream at counter block `iv`.
  bool CtrStart(const uint8_t* iv);
  // XORs the next `len` keystream bytes into `data`; byte-granular across calls.
  bool CtrXor(uint8_t* data, size_t len);
  // Starts a CBC chain at `iv`.
  bool CbcStart(bool encrypt, const uint8_t* iv);
  // Processes whole blocks in place, continuing the chain.
  bool Cbc(bool encrypt, uint8_t* data, size_t len);

 private:
  AesKeySchedule() = default;
  bool CtrRestart();

  EVP_CIPHER_CTX* ctr_ = nullptr;
  EVP_CIPHER_CTX* cbcEnc_ = nullptr;
  EVP_CIPHER_CTX* cbcDec_ = nullptr;
  // The counter block of the next keystream byte: high and low 64 bits, and the byte
  // position inside that block. Tracked here because CENC counters wrap in 64 bits.
  uint64_t ctrHigh_ = 0;
  uint64_t ctrLow_ = 0;
  size_t ctrByte_ = 0;
};

// The key schedules of one key, shared by the JS object and its in-flight workers
// (std::shared_ptr keeps them alive after close()). Grows to the number of concurrent users.
class AesKeyRing {
 public:
  explicit AesKeyRing(const Key& key);
  ~AesKeyRing();
  AesKeyRing(const AesKeyRing&) = delete;
  AesKeyRing& operator=(const AesKeyRing&) = delete;

  // Borrows a schedule for one batch; returns it to the ring when destroyed.
  class Lease {
   public:
    Lease(AesKeyRing* ring, std::unique_ptr<AesKeySchedule> schedule);
    ~Lease();
    Lease(Lease&&) = default;
    AesKeySchedule* get() const { return schedule_.get(); }

   private:
    AesKeyRing* ring_;
    std::unique_ptr<AesKeySchedule> schedule_;
  };

  // The lease holds null when OpenSSL could not build a context.
  Lease Acquire();

 private:
  void Release(std::unique_ptr<AesKeySchedule> schedule);

  Key key_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<AesKeySchedule>> idle_;
};

// OpenSSL_version(OPENSSL_VERSION) of the library the addon runs against.
std::string OpenSslVersion();
// Whether the CPU has AES instructions; -1 when it cannot be told cheaply.
int CpuHasAes();
// Drains OpenSSL's error queue into one line, for error messages.
std::string OpenSslErrors();

}  // namespace keywarden::cenc

#endif  // KEYWARDEN_NATIVE_CENC_AES_H_
