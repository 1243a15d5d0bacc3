#include "cenc-crypt.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

namespace keywarden::cenc {

namespace {

// Applies one scheme to the samples of a batch. A "protected range" is the
// BytesOfProtectedData of one subsample, or the whole sample when it has no subsamples.
class SampleCrypter {
 public:
  SampleCrypter(AesKeySchedule& aes, const BatchView& batch, bool encrypt, uint8_t* scratch)
      : aes_(aes), batch_(batch), encrypt_(encrypt), scratch_(scratch) {}

  bool Sample(uint8_t* data, size_t index);

 private:
  bool StartSample(const uint8_t* iv);
  bool Range(uint8_t* range, size_t len, const uint8_t* iv);
  bool PatternRange(uint8_t* range, size_t len);
  bool CryptBlocks(uint8_t* blocks, size_t len);
  template <typename Copy>
  size_t WalkCryptRuns(uint8_t* range, size_t blocks, Copy copy) const;

  AesKeySchedule& aes_;
  const BatchView& batch_;
  const bool encrypt_;
  uint8_t* const scratch_;
};

bool SampleCrypter::Sample(uint8_t* data, size_t index) {
  const uint32_t* s = batch_.Sample(index);
  uint8_t* sample = data + s[0];
  const uint8_t* iv = batch_.Iv(index);
  if (!StartSample(iv)) return false;
  if (s[3] == 0) return Range(sample, s[1], iv);
  size_t pos = 0;
  for (size_t k = s[2]; k < size_t{s[2]} + s[3]; ++k) {
    pos += batch_.subsamples[2 * k];
    const size_t prot = batch_.subsamples[2 * k + 1];
    if (!Range(sample + pos, prot, iv)) return false;
    pos += prot;
  }
  return true;  // bytes after the last subsample stay clear
}

// cenc and cens: one keystream per sample, continuing across its protected ranges (§10.1,
// §10.3). cbc1: one CBC chain per sample (§10.2). cbcs restarts at each range instead.
bool SampleCrypter::StartSample(const uint8_t* iv) {
  switch (batch_.scheme) {
    case Scheme::kCenc:
    case Scheme::kCens:
      return aes_.CtrStart(iv);
    case Scheme::kCbc1:
      return aes_.CbcStart(encrypt_, iv);
    case Scheme::kCbcs:
      return true;
  }
  return false;
}

bool SampleCrypter::Range(uint8_t* range, size_t len, const uint8_t* iv) {
  switch (batch_.scheme) {
    case Scheme::kCenc:  // §10.1: byte-granular, a trailing partial block included
      return aes_.CtrXor(range, len);
    case Scheme::kCbc1:  // whole blocks only; a partial block at the end stays clear
      return aes_.Cbc(encrypt_, range, len - len % kBlock);
    case Scheme::kCens:
      return PatternRange(range, len);
    case Scheme::kCbcs:  // §10.4.2: the chain restarts from the constant IV per range
      return len < kBlock || (aes_.CbcStart(encrypt_, iv) && PatternRange(range, len));
  }
  return false;
}

// Calls copy(rangeBlock, scratchOffset, bytes) for each run of encrypted blocks of the
// §9.6 pattern, which restarts at each protected range. A last run shorter than `crypt`
// blocks is still encrypted (§10.4.2, as Chromium and Bento4 read it); a trailing partial
// block is clear. Returns the bytes gathered.
template <typename Copy>
size_t SampleCrypter::WalkCryptRuns(uint8_t* range, size_t blocks, Copy copy) const {
  const size_t crypt = batch_.pattern.crypt, span = crypt + batch_.pattern.skip;
  size_t gathered = 0;
  for (size_t b = 0; b < blocks; b += span) {
    const size_t bytes = std::min(crypt, blocks - b) * kBlock;
    copy(range + b * kBlock, gathered, bytes);
    gathered += bytes;
  }
  return gathered;
}

// The encrypted blocks of a range are gathered into scratch so that one EVP call does them
// all (AES-NI pipelines CBC decryption and CTR only over contiguous input), then scattered.
bool SampleCrypter::PatternRange(uint8_t* range, size_t len) {
  const size_t blocks = len / kBlock;
  if (blocks == 0) return true;
  if (batch_.pattern.Contiguous()) return CryptBlocks(range, blocks * kBlock);
  uint8_t* scratch = scratch_;
  const size_t n = WalkCryptRuns(range, blocks, [scratch](uint8_t* at, size_t off, size_t bytes) {
    std::memcpy(scratch + off, at, bytes);
  });
  if (!CryptBlocks(scratch, n)) return false;
  WalkCryptRuns(range, blocks, [scratch](uint8_t* at, size_t off, size_t bytes) {
    std::memcpy(at, scratch + off, bytes);
  });
  return true;
}

bool SampleCrypter::CryptBlocks(uint8_t* blocks, size_t len) {
  // cens: only encrypted blocks consume keystream (§10.3).
  if (batch_.scheme == Scheme::kCens) return aes_.CtrXor(blocks, len);
  return aes_.Cbc(encrypt_, blocks, len);
}

}  // namespace

std::optional<std::string> CryptBatch(AesKeyRing& ring, const BatchView& batch,
                                      const MapSummary& summary, bool encrypt, uint8_t* data) {
  AesKeyRing::Lease lease = ring.Acquire();
  if (lease.get() == nullptr) return "cannot create an AES context: " + OpenSslErrors();
  // nothrow: a failed allocation is an error to report, not a std::bad_alloc to unwind.
  std::unique_ptr<uint8_t[]> scratch;
  if (summary.scratchBytes > 0) {
    scratch.reset(new (std::nothrow) uint8_t[summary.scratchBytes]);
    if (!scratch) return "out of memory for " + std::to_string(summary.scratchBytes) + " bytes";
  }
  SampleCrypter crypter(*lease.get(), batch, encrypt, scratch.get());
  for (size_t i = 0; i < batch.SampleCount(); ++i) {
    if (!crypter.Sample(data, i)) {
      return "AES failed in sample " + std::to_string(i) + ": " + OpenSslErrors();
    }
  }
  return std::nullopt;
}

}  // namespace keywarden::cenc
