// A CIM-XML response body as the CLI reads it from whatever answers at the
// address it was given: ParseResponse.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cim/xml_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)vmgroup::cim::ParseResponse(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
