// A CIM-XML request body as any network client may send it: ParseRequest,
// then ParseEmbeddedInstance on every scalar parameter, as the providers read
// embedded instances (SnapshotSettings, SystemSettings, ResourceSettings).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "cim/xml_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmgroup::cim;
  auto parsed = ParseRequest(std::string_view(reinterpret_cast<const char*>(data), size));
  if (auto* request = std::get_if<Request>(&parsed)) {
    for (const Param& p : request->params) {
      if (p.value.kind == Value::Kind::kScalar) (void)ParseEmbeddedInstance(p.value.scalar);
    }
  }
  return 0;
}
