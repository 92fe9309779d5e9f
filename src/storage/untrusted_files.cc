#include "storage/untrusted_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace vmgroup::storage {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

ssize_t ReadSome(int fd, char* buf, size_t n) {
  ssize_t r;
  do {
    r = ::read(fd, buf, n);
  } while (r < 0 && errno == EINTR);
  return r;
}

// Reads into `buf` until it is full or the file ends; the bytes read.
Result<size_t> ReadFull(int fd, char* buf, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ReadSome(fd, buf + got, n - got);
    if (r < 0) return Status::IoError(Errno("cannot read " + path));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

Status WriteAll(int fd, const char* data, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::IoError(Errno("cannot write " + path));
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

}  // namespace

Result<UniqueFd> OpenRegular(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how)));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::FileNotFound(path + " does not exist");
    if (errno == ELOOP) {
      return Status::InvalidArgument(path +
                                     " is a symbolic link or lies behind one; name the real file");
    }
    return Status::IoError(Errno("cannot open " + path));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IoError(Errno("cannot stat " + path));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return Status::IoError(Errno("cannot set up " + path));
  }
  return fd;
}

Result<std::string> ReadBounded(const std::string& path, uint64_t max_bytes,
                                const std::string& what) {
  VMG_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegular(path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::IoError(Errno("cannot stat " + path));
  const auto too_big = [&](uint64_t bytes) {
    return Status::InvalidArgument(what + " " + path + " is " + std::to_string(bytes) +
                                   " bytes; at most " + std::to_string(max_bytes) + " are read");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return too_big(static_cast<uint64_t>(st.st_size));
  }
  // One byte more than allowed: a file that grew meanwhile is caught too.
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  while (true) {
    VMG_ASSIGN_OR_RETURN(size_t n, ReadFull(fd.get(), text.data() + got, text.size() - got, path));
    got += n;
    if (got < text.size()) break;
    if (got > max_bytes) return too_big(got);
    text.resize(std::min<uint64_t>(text.size() * 2, max_bytes + 1));
  }
  text.resize(got);
  return text;
}

Result<std::string> ReadHead(const std::string& path, uint64_t max_bytes) {
  VMG_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegular(path));
  std::string head(static_cast<size_t>(max_bytes), '\0');
  VMG_ASSIGN_OR_RETURN(size_t n, ReadFull(fd.get(), head.data(), head.size(), path));
  head.resize(n);
  return head;
}

Result<FileDigest> CopyRegular(const std::string& from, const std::string& to) {
  VMG_ASSIGN_OR_RETURN(UniqueFd in, OpenRegular(from));
  ::posix_fadvise(in.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  // open(2) itself, as every call in this file: these paths come from
  // clients, and what makes them safe is the exact flags and calls here
  // (openat2 without symlinks, O_NOFOLLOW, lstat, fchmod on the open file),
  // none of which an Env, which tests replace, should be trusted to keep.
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out.valid()) {
    if (errno == EEXIST) return Status::AlreadyExists(to + " already exists");
    return Status::IoError(Errno("cannot create " + to));
  }
  auto copy = [&]() -> Result<FileDigest> {
    constexpr size_t kBlock = 64 << 10;  // the unit of holes kept
    std::vector<char> buf(1 << 20);
    Digester digester;
    while (true) {
      VMG_ASSIGN_OR_RETURN(size_t n, ReadFull(in.get(), buf.data(), buf.size(), from));
      if (n == 0) break;
      digester.Update(buf.data(), n);
      for (size_t at = 0; at < n; at += kBlock) {
        const size_t len = std::min(kBlock, n - at);
        const char* block = buf.data() + at;
        if (std::all_of(block, block + len, [](char c) { return c == 0; })) {
          if (::lseek(out.get(), static_cast<off_t>(len), SEEK_CUR) < 0) {
            return Status::IoError(Errno("cannot seek in " + to));
          }
        } else {
          VMG_RETURN_IF_ERROR(WriteAll(out.get(), block, len, to));
        }
      }
    }
    FileDigest digest = digester.Digest();
    if (::ftruncate(out.get(), static_cast<off_t>(digest.bytes)) != 0) {
      return Status::IoError(Errno("cannot size " + to));
    }
    if (::fsync(out.get()) != 0) return Status::IoError(Errno("cannot sync " + to));
    return digest;
  };
  auto digest = copy();
  if (!digest.ok()) ::unlink(to.c_str());
  return digest;
}

Result<FileKind> KindOf(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return FileKind::kMissing;
    return Status::IoError(Errno("cannot look at " + path));
  }
  if (S_ISLNK(st.st_mode)) return FileKind::kLink;
  if (S_ISDIR(st.st_mode)) return FileKind::kDirectory;
  if (S_ISREG(st.st_mode)) return FileKind::kRegular;
  return FileKind::kOther;
}

Status SetAccess(const std::string& path, unsigned mode, int gid) {
  // open(2) itself, as in CopyRegular: O_NOFOLLOW on a client's path.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return Status::IoError(Errno("cannot open " + path));
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
    return Status::IoError(Errno("cannot set the mode of " + path));
  }
  if (gid >= 0 && ::fchown(fd.get(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0) {
    return Status::IoError(Errno("cannot set the group of " + path));
  }
  return Status::Ok();
}

}  // namespace vmgroup::storage
