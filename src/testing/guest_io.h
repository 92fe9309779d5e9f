// Writes into a running VM's disk as its guest would, through a second QMP
// monitor the VM was given (GuestMonitorArgs) and HMP's qemu-io: the only
// way to change a disk in use by QEMU at a known place, with no guest kernel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace vmgroup::testing {

// The extra QEMU arguments that give a VM a monitor on unix socket `path`.
std::vector<std::string> GuestMonitorArgs(const std::string& path);

// Writes `length` bytes of `pattern` at `offset` of disk `disk` through the
// monitor at `monitor`.
Status WriteAsGuest(const std::string& monitor, int disk, int pattern, uint64_t offset,
                    uint64_t length);

// Writes `pattern` over `pct` percent of the 64 KiB clusters of disk 0's
// first `bytes`, spread evenly over them (one cluster in every 100/pct), as
// WriteAsGuest: what the benchmarks of incrementals change between cuts.
Status WriteSpreadClusters(const std::string& monitor, uint64_t bytes, double pct, int pattern);

}  // namespace vmgroup::testing
