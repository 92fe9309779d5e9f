#include "base/socket_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vmgroup {
namespace {

int MillisLeft(Env* env, Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - env->Now());
  return left.count() < 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

// Waits until `fd` is ready for `events`; Timeout at the deadline.
Status Wait(Env* env, int fd, short events, Deadline deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, MillisLeft(env, deadline));
    if (n > 0) return Status::Ok();
    if (n == 0) return Status::Timeout("the peer did not answer in time");
    if (errno != EINTR) return Status::IoError(std::string("poll: ") + std::strerror(errno));
  }
}

}  // namespace

Status ReadSome(Env* env, int fd, Deadline deadline, std::string* buffer) {
  while (true) {
    VMG_RETURN_IF_ERROR(Wait(env, fd, POLLIN, deadline));
    char buf[16384];
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got > 0) {
      buffer->append(buf, static_cast<size_t>(got));
      return Status::Ok();
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0 && errno != ECONNRESET) {
      return Status::IoError(std::string("recv: ") + std::strerror(errno));
    }
    return Status::Unavailable("the peer closed the connection");
  }
}

Status WriteAll(Env* env, int fd, std::string_view data, Deadline deadline) {
  size_t done = 0;
  while (done < data.size()) {
    VMG_RETURN_IF_ERROR(Wait(env, fd, POLLOUT, deadline));
    ssize_t w = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w <= 0) return Status::Unavailable(std::string("send: ") + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

}  // namespace vmgroup
