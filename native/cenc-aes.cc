#include "cenc-aes.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <algorithm>
#include <climits>

#if defined(__linux__) && (defined(__aarch64__) || defined(__arm__))
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace keywarden::cenc {

namespace {

constexpr size_t kBlockBytes = 16;
// EVP_CipherUpdate takes an int length; a multiple of the block keeps CBC chunks whole.
constexpr size_t kMaxUpdate = size_t{1} << 30;

uint64_t LoadBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void StoreBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

bool Update(EVP_CIPHER_CTX* ctx, uint8_t* data, size_t len) {
  while (len > 0) {
    const int n = static_cast<int>(std::min(len, kMaxUpdate));
    int written = 0;
    if (EVP_CipherUpdate(ctx, data, &written, data, n) != 1 || written != n) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

EVP_CIPHER_CTX* NewKeyed(const EVP_CIPHER* cipher, const Key& key, int encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  // No padding: CENC never pads, and with padding on a CBC decrypt holds back its last block.
  if (EVP_CipherInit_ex(ctx, cipher, nullptr, key.data(), nullptr, encrypt) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::unique_ptr<AesKeySchedule> AesKeySchedule::Create(const Key& key) {
  std::unique_ptr<AesKeySchedule> s(new AesKeySchedule());
  s->ctr_ = NewKeyed(EVP_aes_128_ctr(), key, 1);
  s->cbcEnc_ = NewKeyed(EVP_aes_128_cbc(), key, 1);
  s->cbcDec_ = NewKeyed(EVP_aes_128_cbc(), key, 0);
  if (s->ctr_ == nullptr || s->cbcEnc_ == nullptr || s->cbcDec_ == nullptr) return nullptr;
  return s;
}

AesKeySchedule::~AesKeySchedule() {
  // EVP_CIPHER_CTX_free cleanses the expanded keys.
  EVP_CIPHER_CTX_free(ctr_);
  EVP_CIPHER_CTX_free(cbcEnc_);
  EVP_CIPHER_CTX_free(cbcDec_);
}

bool AesKeySchedule::CtrStart(const uint8_t* iv) {
  ctrHigh_ = LoadBe64(iv);
  ctrLow_ = LoadBe64(iv + 8);
  ctrByte_ = 0;
  return EVP_CipherInit_ex(ctr_, nullptr, nullptr, nullptr, iv, 1) == 1;
}

// ISO/IEC 23001-7 AES-CTR: the block counter is the low 64 bits of the counter block and
// wraps to 0 without touching the high 64 bits (shaka-packager's AesCtrEncryptor agrees).
// OpenSSL carries into all 128 bits, so the stream is restarted by hand at the wrap.
bool AesKeySchedule::CtrRestart() {
  uint8_t block[kBlockBytes];
  StoreBe64(block, ctrHigh_);
  StoreBe64(block + 8, ctrLow_);
  return EVP_CipherInit_ex(ctr_, nullptr, nullptr, nullptr, block, 1) == 1;
}

bool AesKeySchedule::CtrXor(uint8_t* data, size_t len) {
  while (len > 0) {
    const uint64_t blocksAfter = ~ctrLow_;  // blocks left after the current one before the wrap
    const bool wrapNear = blocksAfter < (SIZE_MAX >> 5);
    const size_t toWrap = wrapNear ? (blocksAfter + 1) * kBlockBytes - ctrByte_ : SIZE_MAX;
    const size_t n = std::min(len, toWrap);
    if (!Update(ctr_, data, n)) return false;
    const size_t consumed = ctrByte_ + n;
    ctrLow_ += consumed / kBlockBytes;  // unsigned: wraps mod 2^64 by design
    ctrByte_ = consumed % kBlockBytes;
    data += n;
    len -= n;
    if (wrapNear && n == toWrap && !CtrRestart()) return false;
  }
  return true;
}

bool AesKeySchedule::CbcStart(bool encrypt, const uint8_t* iv) {
  return EVP_CipherInit_ex(encrypt ? cbcEnc_ : cbcDec_, nullptr, nullptr, nullptr, iv,
                           encrypt ? 1 : 0) == 1;
}

bool AesKeySchedule::Cbc(bool encrypt, uint8_t* data, size_t len) {
  return len % kBlockBytes == 0 && Update(encrypt ? cbcEnc_ : cbcDec_, data, len);
}

AesKeyRing::AesKeyRing(const Key& key) : key_(key) {}

AesKeyRing::~AesKeyRing() { OPENSSL_cleanse(key_.data(), key_.size()); }

AesKeyRing::Lease::Lease(AesKeyRing* ring, std::unique_ptr<AesKeySchedule> schedule)
    : ring_(ring), schedule_(std::move(schedule)) {}

AesKeyRing::Lease::~Lease() {
  if (schedule_) ring_->Release(std::move(schedule_));
}

AesKeyRing::Lease AesKeyRing::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<AesKeySchedule> s = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(s));
    }
  }
  return Lease(this, AesKeySchedule::Create(key_));
}

void AesKeyRing::Release(std::unique_ptr<AesKeySchedule> schedule) {
  std::lock_guard<std::mutex> lock(mutex_);
  idle_.push_back(std::move(schedule));
}

std::string OpenSslVersion() { return OpenSSL_version(OPENSSL_VERSION); }

int CpuHasAes() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("aes") ? 1 : 0;
#elif defined(__linux__) && defined(__aarch64__)
  return (getauxval(AT_HWCAP) & HWCAP_AES) != 0 ? 1 : 0;
#elif defined(__linux__) && defined(__arm__)
  return (getauxval(AT_HWCAP2) & HWCAP2_AES) != 0 ? 1 : 0;
#else
  return -1;
#endif
}

std::string OpenSslErrors() {
  std::string out;
  char line[256];
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    ERR_error_string_n(e, line, sizeof line);
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out.empty() ? "no OpenSSL error recorded" : out;
}

}  // namespace keywarden::cenc
