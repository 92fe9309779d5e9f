// Checksums of image files, as exports record them and restores verify
// them: XXH3 128-bit, written "xxh128:<32 hex digits>". A backup's checksum
// guards against damage in storage or transfer, not against tampering (an
// attacker could rewrite the manifest beside it), so a fast hash fits:
// XXH3 reads at memory speed, where SHA-256 would cost an export about half
// its throughput (docs/benchmarks.md).
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace vmgroup::storage {

struct FileDigest {
  uint64_t bytes = 0;    // the file's length
  std::string checksum;  // "xxh128:..."
};

// Reads the whole file at `path`. FileNotFound if it is missing.
Result<FileDigest> DigestFile(const std::string& path);

}  // namespace vmgroup::storage
