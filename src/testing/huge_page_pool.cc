#include "testing/huge_page_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

#include "base/env.h"
#include "base/huge_pages.h"

namespace vmgroup::testing {
namespace {

Result<int64_t> Count(const char* path) {
  VMG_ASSIGN_OR_RETURN(std::string text, Env::Default()->ReadFile(path));
  int64_t n = -1;
  std::from_chars(text.data(), text.data() + text.size(), n);
  if (n < 0) return Status::IoError(std::string(path) + " holds no count");
  return n;
}

// Written in place: a sysfs file cannot be replaced by a rename as
// Env::WriteFile would.
Status SetPool(int64_t pages) {
  const int fd = ::open(kHugePagePoolPath, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::Unavailable(std::string("cannot open ") + kHugePagePoolPath + ": " +
                               std::strerror(errno));
  const std::string text = std::to_string(pages) + "\n";
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int err = errno;
  ::close(fd);
  if (!written)
    return Status::Unavailable(std::string("cannot set ") + kHugePagePoolPath + ": " +
                               std::strerror(err));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<HugePagePool>> HugePagePool::Reserve(int64_t free_pages) {
  if (::geteuid() != 0) return Status::Unavailable("reserving huge pages needs root");
  VMG_ASSIGN_OR_RETURN(const int64_t before, Count(kHugePagePoolPath));
  VMG_ASSIGN_OR_RETURN(const int64_t free_now, Count(kFreeHugePagesPath));
  std::unique_ptr<HugePagePool> pool(new HugePagePool(before));
  if (free_now >= free_pages) return pool;
  VMG_RETURN_IF_ERROR(SetPool(before + free_pages - free_now));
  VMG_ASSIGN_OR_RETURN(const int64_t got, Count(kFreeHugePagesPath));
  if (got < free_pages) {
    return Status::Unavailable("the kernel found " + std::to_string(got) + " of the " +
                               std::to_string(free_pages) +
                               " free 2 MiB pages asked for (memory too fragmented)");
  }  // `pool` gives back what it took as it goes
  return pool;
}

void HugePagePool::Restore() {
  if (restored_) return;
  restored_ = true;
  (void)SetPool(before_);
}

HugePagePool::~HugePagePool() { Restore(); }

}  // namespace vmgroup::testing
