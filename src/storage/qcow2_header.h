// Our own reader of a qcow2 image's header (QEMU's docs/interop/qcow2.txt):
// what the image will make QEMU open besides itself — its backing file and
// an external data file — read from the first bytes of the file without
// running qemu-img, which opens those files as it reads the header.
//
// A pure function from bytes to a struct: no I/O, no allocation beyond the
// names it returns, every offset checked against the bytes it was given.
// (It is a fuzzing target: keep it that way.) Judging what it found (is
// this backing file allowed?) is image_check.h's business.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmgroup::storage {

// The magic at offset 0: "QFI\xfb".
inline constexpr uint32_t kQcow2Magic = 0x514649fb;
// Header extension types this reader knows.
inline constexpr uint32_t kQcow2ExtBackingFormat = 0xE2792ACA;
inline constexpr uint32_t kQcow2ExtDataFile = 0x44415441;
// Incompatible feature bits.
inline constexpr uint64_t kQcow2Dirty = 1u << 0;
inline constexpr uint64_t kQcow2Corrupt = 1u << 1;
inline constexpr uint64_t kQcow2ExternalData = 1u << 2;
inline constexpr uint64_t kQcow2CompressionType = 1u << 3;
inline constexpr uint64_t kQcow2ExtendedL2 = 1u << 4;
// QEMU reads at most this many bytes of a backing file's name.
inline constexpr size_t kQcow2MaxBackingName = 1023;
// The largest cluster (2 MiB): a header with everything it names lies in the
// first cluster, so this many first bytes of a file always suffice.
inline constexpr size_t kQcow2MaxHeaderBytes = size_t{1} << 21;

struct Qcow2Header {
  uint32_t version = 0;                // 2 or 3
  uint32_t cluster_bits = 0;           // 9..21
  uint64_t virtual_size = 0;           // bytes the guest sees
  uint32_t crypt_method = 0;           // 0: not encrypted
  uint64_t incompatible_features = 0;  // version 3; 0 for version 2
  bool has_backing = false;
  std::string backing_file;    // as the header names it; empty without one
  std::string backing_format;  // from extension 0xE2792ACA; empty without one
  bool has_data_file = false;  // extension 0x44415441 present
  std::string data_file;       // its name
};

// Reads the header at the start of `first_bytes` (a file's first bytes:
// kQcow2MaxHeaderBytes, or the whole file when it is shorter).
// InvalidArgument, saying what is wrong, when the bytes are not a qcow2
// header (wrong magic, a version other than 2 or 3, an impossible cluster
// size or header length), or when the header, its extensions or the
// backing file's name reach past `first_bytes` or out of the first cluster.
// Values that are well-formed but unwelcome (a corrupt bit, a data file,
// unknown feature bits) are reported, not refused.
Result<Qcow2Header> ParseQcow2Header(std::string_view first_bytes);

}  // namespace vmgroup::storage
