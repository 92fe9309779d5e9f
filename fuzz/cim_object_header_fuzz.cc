// The CIMObject HTTP header of a request (DSP0200): ParseCimObjectHeader.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cim/xml_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)vmgroup::cim::ParseCimObjectHeader(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
