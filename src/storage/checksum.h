// Checksums of image files, as exports record them and restores verify
// them: XXH3 128-bit, written "xxh128:<32 hex digits>". A backup's checksum
// guards against damage in storage or transfer, not against tampering (an
// attacker could rewrite the manifest beside it), so a fast hash fits:
// XXH3 reads at memory speed, where SHA-256 would cost an export about half
// its throughput (docs/benchmarks.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/env.h"
#include "base/result.h"

struct XXH3_state_s;

namespace vmgroup::storage {

struct FileDigest {
  uint64_t bytes = 0;    // the file's length
  std::string checksum;  // "xxh128:..."
};

// The digest of bytes handed over piece by piece (for a file read once for
// another purpose too). Not thread-safe.
class Digester {
 public:
  Digester();  // aborts when the hash state cannot be allocated, as `new` would
  ~Digester();
  Digester(const Digester&) = delete;
  Digester& operator=(const Digester&) = delete;

  void Update(const char* data, size_t n);
  // The digest of everything handed to Update.
  FileDigest Digest() const;

 private:
  XXH3_state_s* state_;
  uint64_t bytes_ = 0;
};

// Reads the whole file at `path`, opened through `env`. FileNotFound if it
// is missing.
Result<FileDigest> DigestFile(Env* env, const std::string& path);

}  // namespace vmgroup::storage
