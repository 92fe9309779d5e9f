#include "base/unix_socket.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace vmgroup {

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument("unix socket path is too long (" + std::to_string(path.size()) +
                                   " bytes, at most " + std::to_string(sizeof addr.sun_path - 1) +
                                   "): " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<UniqueFd> ConnectUnix(Env* env, const std::string& path, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(const sockaddr_un addr, UnixAddress(path));
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Status::IoError(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      return fd;
    }
    const int error = errno;
    if (env->Now() >= deadline) {
      return Status::Unavailable("cannot connect to " + path + ": " + std::strerror(error));
    }
    env->SleepFor(std::chrono::milliseconds(10));
  }
}

}  // namespace vmgroup
