// The campaign's command line. Every default is the short run CTest makes
// (about 20 kills on 2 cores under TCG); longer runs raise --kills and
// --full-disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmgroup::campaign {

struct Options {
  int kills = 20;                 // SIGKILLs of vmgroupd before the campaign ends
  int full_disk = 3;              // steps run with a nearly full state directory or export target
  uint64_t seed = 0;              // the random stream; a run is replayed by giving its seed
  int guests = 2;                 // real guests writing sequence records, in one group
  int memory_mib = 96;            // each guest's RAM (a Standard snapshot writes it)
  int max_kill_delay_ms = 3000;   // SIGKILL comes 0..this after an operation starts
  uint64_t state_mib = 768;       // the tmpfs holding the state directory
  uint64_t export_mib = 384;      // the tmpfs holding export targets
  bool keep = false;              // keep the work directory (and the daemon's log) at the end
  std::string vmgroupd, vmgroup;  // the binaries under test
  std::string guest_kit;          // holds vmlinuz and initrd.gz (tests/guest_kit/build.sh)
};

// Parses argv[1..]; InvalidArgument naming the flag and what it takes.
// A seed is drawn from the clock when none is given.
Result<Options> ParseOptions(const std::vector<std::string>& args);

extern const char* const kUsage;

}  // namespace vmgroup::campaign
