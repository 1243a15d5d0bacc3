// The ISO/IEC 23001-7 sample transforms: one validated batch, in place. No Node-API here,
// so the async worker runs it off the JS thread.
//
// A protected range is the BytesOfProtectedData of a subsample, or the whole sample when it
// has none; bytes after the last listed subsample stay clear.
//   cenc  AES-CTR; one keystream per sample, continued byte by byte across its ranges; a
//         trailing partial block is encrypted. The counter wraps in its low 64 bits.
//   cbc1  AES-CBC; one chain per sample across the whole blocks of its ranges; a partial
//         block at the end of a range stays clear (conformant video has none).
//   cens  AES-CTR over the pattern's encrypted blocks only, keystream continued across the
//         sample's ranges; the pattern restarts at each range.
//   cbcs  AES-CBC over the pattern's encrypted blocks, the chain restarting from the IV at
//         each range.
// Patterns (§9.6): crypt:skip blocks from the start of each range, the last run encrypted
// even if shorter than crypt, a trailing partial block clear; 0:0 and N:0 mean all blocks.
#ifndef KEYWARDEN_NATIVE_CENC_CRYPT_H_
#define KEYWARDEN_NATIVE_CENC_CRYPT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "cenc-aes.h"
#include "cenc-map.h"

namespace keywarden::cenc {

// Encrypts or decrypts every sample of `batch` in `data`. The batch must have passed
// ValidateBatch against `data`'s length; `summary` is what it returned. Returns an error
// message when OpenSSL fails (the data may then be partly transformed).
std::optional<std::string> CryptBatch(AesKeyRing& ring, const BatchView& batch,
                                      const MapSummary& summary, bool encrypt, uint8_t* data);

}  // namespace keywarden::cenc

#endif  // KEYWARDEN_NATIVE_CENC_CRYPT_H_
