#include "storage/checksum.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "base/unique_fd.h"

namespace vmgroup::storage {

Result<FileDigest> DigestFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::FileNotFound(path + " does not exist");
    return Status::IoError("cannot open " + path + ": " + std::strerror(errno));
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state || XXH3_128bits_reset(state.get()) != XXH_OK) {
    return Status::IoError("cannot start a checksum");
  }
  std::vector<char> buf(1 << 20);
  uint64_t bytes = 0;
  while (true) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("cannot read " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    bytes += static_cast<uint64_t>(n);
    XXH3_128bits_update(state.get(), buf.data(), static_cast<size_t>(n));
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state.get());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return FileDigest{bytes, "xxh128:" + std::string(hex)};
}

}  // namespace vmgroup::storage
