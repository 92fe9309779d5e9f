// VmConfig: what a VM is configured with, declared once for every layer
// that holds it (the catalog's record, the hypervisor's spec, a definition
// on its way in, an export's configuration, the command line's view). A
// VM's configuration moves between them by one assignment; what a layer
// changes on the way (an export's own kernel files, a restore's copies)
// is written where it happens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmgroup {

struct VmConfig {
  // Wide, so that a value from outside (DefineSystem, the CLI, an export)
  // reaches the bounds check (engine::VmRegistry::CheckBounds) as it was
  // given, never cut short on its way; within those bounds everywhere past
  // it.
  int64_t memory_mib = 128;
  int64_t vcpus = 1;
  // Guest RAM on the host's 2 MiB huge pages, all taken when the VM starts
  // (base/huge_pages.h): memory_mib must be a multiple of 2.
  bool hugepages = false;
  // Optional direct kernel boot: absolute paths (relative to the export in
  // an export's configuration), and the kernel command line.
  std::string kernel, initrd, append;
  // Appended to the hypervisor's command line. Never from outside: the CLI
  // and DefineSystem cannot set them, and an export carries none.
  std::vector<std::string> extra_args;
};

}  // namespace vmgroup
