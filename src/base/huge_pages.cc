#include "base/huge_pages.h"

#include <algorithm>
#include <charconv>

namespace vmgroup {
namespace {

// The count a sysfs file holds ("512\n").
Result<int64_t> ReadCount(Env* env, const char* path) {
  VMG_ASSIGN_OR_RETURN(std::string text, env->ReadFile(path));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  int64_t n = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || n < 0) {
    return Status::IoError(std::string(path) + " holds no page count: '" + text + "'");
  }
  return n;
}

}  // namespace

int64_t HugePagesFor(int64_t memory_mib) { return (memory_mib + kHugePageMib - 1) / kHugePageMib; }

Status CheckHugePageMultiple(const std::string& vm, int64_t memory_mib) {
  if (memory_mib % kHugePageMib == 0) return Status::Ok();
  const int64_t below = memory_mib - memory_mib % kHugePageMib;
  return Status::InvalidArgument(vm + ": memory on huge pages must be a multiple of 2 MiB, not " +
                                 std::to_string(memory_mib) + " MiB (" + std::to_string(below) +
                                 " or " + std::to_string(below + kHugePageMib) + " would do)");
}

Status CheckHugePagesFree(Env* env, const std::string& vm, int64_t memory_mib) {
  const int64_t needed = HugePagesFor(memory_mib);
  auto free_pages = ReadCount(env, kFreeHugePagesPath);
  if (free_pages.status().code() == Code::kFileNotFound) {
    return Status::Unavailable(vm + ": this host's kernel offers no 2 MiB huge pages (no " +
                               std::string(kFreeHugePagesPath) + ")");
  }
  VMG_RETURN_IF_ERROR(free_pages.status());
  // Kernels without the file promise nothing.
  auto promised = ReadCount(env, kReservedHugePagesPath);
  if (!promised.ok() && promised.status().code() != Code::kFileNotFound) return promised.status();
  const int64_t available = std::max<int64_t>(*free_pages - promised.value_or(0), 0);
  if (available >= needed) return Status::Ok();
  // The whole pool the host should have: what it has now and the shortfall.
  const int64_t short_by = needed - available;
  auto pool = ReadCount(env, kHugePagePoolPath);
  const std::string reserve = pool.ok()
                                  ? "sysctl vm.nr_hugepages=" + std::to_string(*pool + short_by)
                                  : "raise vm.nr_hugepages by " + std::to_string(short_by);
  return Status::Unavailable(vm + ": " + std::to_string(memory_mib) +
                             " MiB of RAM on huge pages needs " + std::to_string(needed) +
                             " free 2 MiB pages and the host has " + std::to_string(available) +
                             " free; reserve more as root (" + reserve + ")");
}

}  // namespace vmgroup
