#include "hypervisor/qemu/listen_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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

Result<Listener> ListenTcp(const std::string& host) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    len = sizeof *v6;
  } else {
    return Status::InvalidArgument(host + " is not a numeric IPv4 or IPv6 address");
  }
  auto failed = [&](const char* what) {
    return Status::IoError(std::string("cannot ") + what + " on " + host + ": " +
                           std::strerror(errno));
  };
  Listener l{.fd = UniqueFd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0))};
  if (!l.fd.valid()) return failed("make a socket");
  // Port 0: the kernel picks a free one, so sessions never collide.
  if (::bind(l.fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    return failed("bind");
  }
  if (::listen(l.fd.get(), 8) != 0) return failed("listen");
  if (::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return failed("find the port");
  }
  l.port = ntohs(addr.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  return l;
}

}  // namespace vmgroup::hypervisor::qemu
