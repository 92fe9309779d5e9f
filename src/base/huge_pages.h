// Guest RAM on the host's 2 MiB huge pages (hugetlbfs): how many a VM
// needs and whether the host has them free. A guest on huge pages keeps a
// memory-inclusive snapshot's pause short and nearly flat in its RAM size
// (QEMU prepares write tracking per page: 512 times fewer of them); the
// pages must be reserved on the host beforehand (vm.nr_hugepages), and a
// VM takes all of its own when it starts (QEMU preallocates them).
#pragma once

#include <cstdint>
#include <string>

#include "base/env.h"
#include "base/status.h"

namespace vmgroup {

// The one huge page size vmgroup puts guest RAM on.
inline constexpr int64_t kHugePageMib = 2;

// Where the kernel counts the 2 MiB pages of its pool: all of them (what
// vm.nr_hugepages sets on x86), those free, and of those the ones promised
// to mappings that have not touched them yet.
inline constexpr char kHugePagePoolPath[] =
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
inline constexpr char kFreeHugePagesPath[] =
    "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
inline constexpr char kReservedHugePagesPath[] =
    "/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages";

// The 2 MiB pages `memory_mib` of guest RAM takes, rounded up.
int64_t HugePagesFor(int64_t memory_mib);

// OK when `memory_mib` is a whole number of 2 MiB pages; InvalidArgument
// naming `vm` and the nearest sizes that are, otherwise.
Status CheckHugePageMultiple(const std::string& vm, int64_t memory_mib);

// OK when the host has at least HugePagesFor(memory_mib) 2 MiB pages free
// and not promised elsewhere (free_hugepages less resv_hugepages), read
// through `env` (env->ReadFile). Unavailable otherwise, naming `vm`, the
// pages needed and free, and how to reserve more (the sysctl
// vm.nr_hugepages=N that would do, from the pool's size);
// also when the kernel has no 2 MiB pool (the file is missing). IoError
// when a count cannot be read or parsed.
Status CheckHugePagesFree(Env* env, const std::string& vm, int64_t memory_mib);

}  // namespace vmgroup
