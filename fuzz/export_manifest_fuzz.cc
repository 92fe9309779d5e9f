// An export directory's manifest.json and a VM's config.json, which restore
// reads from backup storage anyone may have written: ParseManifest and
// ParseConfig on the same bytes (the corpus holds both kinds).
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/export_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)vmgroup::engine::ParseManifest(text);
  (void)vmgroup::engine::ParseConfig(text);
  return 0;
}
