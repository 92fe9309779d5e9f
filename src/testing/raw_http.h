// Raw HTTP over a socket (tests only): for requests no well-behaved client
// sends — lying framing, heads that trickle, bodies that never come.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "base/unix_socket.h"

namespace vmgroup::testing {

// A connection to 127.0.0.1:`port`, or an invalid fd.
inline UniqueFd ConnectTcp(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fd.reset();
  return fd;
}

// A connection to the unix socket at `path` (one try), or an invalid fd.
inline UniqueFd ConnectUnix(const std::string& path) {
  auto fd = vmgroup::ConnectUnix(Env::Default(), path, Env::Default()->Now());
  return fd.ok() ? std::move(fd).value() : UniqueFd();
}

// Sends `bytes`; false once the server stopped taking them.
inline bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// What the server sends until it closes, or until a whole head has come if
// `stop_at_head`. Gives up after two minutes of silence, so that a broken
// server cannot hang a test.
inline std::string ReceiveHttp(int fd, bool stop_at_head) {
  std::string got;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 120'000) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (stop_at_head && got.find("\r\n\r\n") != std::string::npos) break;
  }
  return got;
}

// The status code of the first answer in `raw`, or 0.
inline int HttpStatus(const std::string& raw) {
  return raw.starts_with("HTTP/1.") && raw.size() >= 12 ? std::stoi(raw.substr(9, 3)) : 0;
}

}  // namespace vmgroup::testing
