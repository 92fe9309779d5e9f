#include "hypervisor/qemu/listen_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unix_socket.h"

namespace vmgroup::hypervisor::qemu {

Result<UniqueFd> ListenAt(const std::string& path, ExistingFile existing) {
  VMG_ASSIGN_OR_RETURN(const sockaddr_un addr, UnixAddress(path));
  if (existing == ExistingFile::kReplace && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::IoError("cannot remove stale " + path + ": " + std::strerror(errno));
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid())
    return Status::IoError(std::string("cannot make a socket: ") + std::strerror(errno));
  // bind(2) never replaces a file: what is there stays.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EADDRINUSE) return Status::AlreadyExists(path + " exists");
    return Status::IoError("cannot listen on " + path + ": " + std::strerror(errno));
  }
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), 8) != 0) {
    Status s = Status::IoError("cannot listen on " + path + ": " + std::strerror(errno));
    ::unlink(path.c_str());  // ours: bound just now
    return s;
  }
  return fd;
}

}  // namespace vmgroup::hypervisor::qemu
