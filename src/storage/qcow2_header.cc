#include "storage/qcow2_header.h"

namespace vmgroup::storage {
namespace {

constexpr size_t kVersion2HeaderBytes = 72;
constexpr size_t kVersion3MinHeaderBytes = 104;
constexpr uint32_t kMinClusterBits = 9, kMaxClusterBits = 21;
// QEMU keeps a backing format name in 16 bytes, with its NUL.
constexpr size_t kMaxBackingFormat = 15;

// Big-endian fields of `bytes`; the caller has checked that they are there.
uint64_t Be(std::string_view bytes, size_t at, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[at + i]);
  return v;
}
uint32_t Be32(std::string_view bytes, size_t at) { return static_cast<uint32_t>(Be(bytes, at, 4)); }
uint64_t Be64(std::string_view bytes, size_t at) { return Be(bytes, at, 8); }

Status Bad(const std::string& why) {
  return Status::InvalidArgument("not a usable qcow2 image: " + why);
}

}  // namespace

Result<Qcow2Header> ParseQcow2Header(std::string_view b) {
  if (b.size() < kVersion2HeaderBytes || Be32(b, 0) != kQcow2Magic) {
    return Status::InvalidArgument("not qcow2 (no qcow2 magic at its start)");
  }
  Qcow2Header h;
  h.version = Be32(b, 4);
  if (h.version != 2 && h.version != 3) {
    return Bad("version " + std::to_string(h.version) + " (2 and 3 are known)");
  }
  const uint64_t backing_offset = Be64(b, 8);
  const uint32_t backing_size = Be32(b, 16);
  h.cluster_bits = Be32(b, 20);
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits) {
    return Bad("cluster bits " + std::to_string(h.cluster_bits));
  }
  const uint64_t cluster = uint64_t{1} << h.cluster_bits;
  h.virtual_size = Be64(b, 24);
  h.crypt_method = Be32(b, 32);

  uint64_t header_length = kVersion2HeaderBytes;
  if (h.version == 3) {
    if (b.size() < kVersion3MinHeaderBytes) return Bad("a version 3 header cut short");
    h.incompatible_features = Be64(b, 72);
    header_length = Be32(b, 100);
    if (header_length < kVersion3MinHeaderBytes || header_length > cluster) {
      return Bad("header length " + std::to_string(header_length));
    }
  }

  // The extensions run from the header's end to the backing file's name,
  // or to the end of the first cluster, as QEMU reads them.
  if (backing_offset > cluster) return Bad("backing file name outside the first cluster");
  const uint64_t ext_end = backing_offset != 0 ? backing_offset : cluster;
  for (uint64_t at = header_length; at < ext_end;) {
    if (ext_end - at < 8) return Bad("a header extension cut short");
    if (at + 8 > b.size()) return Bad("header extensions past the bytes read");
    const uint32_t type = Be32(b, at), length = Be32(b, at + 4);
    at += 8;
    if (type == 0) break;  // the end of the extensions
    if (length > ext_end - at) return Bad("a header extension too long");
    if (at + length > b.size()) return Bad("header extensions past the bytes read");
    const std::string_view data = b.substr(at, length);
    if (type == kQcow2ExtBackingFormat) {
      if (length > kMaxBackingFormat) return Bad("a backing format name too long");
      h.backing_format = std::string(data);
    } else if (type == kQcow2ExtDataFile) {
      h.has_data_file = true;
      h.data_file = std::string(data);
    }
    at += (uint64_t{length} + 7) & ~uint64_t{7};
  }

  if (backing_offset != 0 && backing_size != 0) {
    if (backing_size > kQcow2MaxBackingName || backing_size > cluster - backing_offset) {
      return Bad("backing file name too long");
    }
    if (backing_offset + backing_size > b.size())
      return Bad("backing file name past the bytes read");
    h.has_backing = true;
    h.backing_file = std::string(b.substr(backing_offset, backing_size));
  }
  return h;
}

}  // namespace vmgroup::storage
