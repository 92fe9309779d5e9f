// The first bytes of a qcow2 image, which restore and DefineSystem read
// from files anyone may have written (an export on backup storage, an
// operator's image): ParseQcow2Header must answer every input with a header
// or a refusal, reading nothing past the bytes it was given.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "storage/qcow2_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)vmgroup::storage::ParseQcow2Header(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
