#include "storage/nbd_reader.h"

#include <libnbd.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

namespace vmgroup::storage {
namespace {

// What one block status request asks at most: a request's count is 32
// bits, and a power of two is a multiple of any block size a server needs.
constexpr uint64_t kMaxRequest = uint64_t{1} << 31;

// No completion callback: what NBD_NULL_COMPLETION means, without its C99
// compound literal, which clang warns about in C++.
constexpr nbd_completion_callback kNoCompletion{};

// libnbd's message for the call that just failed on this thread.
std::string LibnbdError() {
  const char* e = nbd_get_error();
  return e != nullptr ? e : "libnbd gave no reason";
}

// Broken (Unavailable) when the connection is gone, else refused (Failed):
// the status of a libnbd call that just failed on `h`.
Status CallFailed(nbd_handle* h) {
  if (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1) {
    return Status::Unavailable(LibnbdError());
  }
  return Status::Failed(LibnbdError());
}

// Moves `h`'s state machine on, waiting on its socket by poll(2) for the
// time left until `deadline` on env's clock, until `done` answers 1 (OK)
// or -1 (a libnbd call failed: CallFailed). Unavailable when the
// connection breaks; Timeout at the deadline.
Status Drive(Env* env, nbd_handle* h, Deadline deadline, const std::function<int()>& done) {
  while (true) {
    const int d = done();
    if (d > 0) return Status::Ok();
    if (d < 0) return CallFailed(h);
    if (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1) {
      return Status::Unavailable("the server closed the connection");
    }
    const unsigned want = nbd_aio_get_direction(h);
    pollfd p{nbd_aio_get_fd(h), 0, 0};
    if (want & LIBNBD_AIO_DIRECTION_READ) p.events |= POLLIN;
    if (want & LIBNBD_AIO_DIRECTION_WRITE) p.events |= POLLOUT;
    // Rounded up: the wait ends at the deadline, not just before it.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - env->Now()).count();
    const int n = ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(std::string("poll: ") + std::strerror(errno));
    if (n == 0) return Status::Timeout("the NBD server did not answer in time");
    // Asked again, as libnbd says: the direction may have moved on.
    const unsigned now = nbd_aio_get_direction(h);
    int r = 0;
    if ((now & LIBNBD_AIO_DIRECTION_READ) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      r = nbd_aio_notify_read(h);
    } else if ((now & LIBNBD_AIO_DIRECTION_WRITE) && (p.revents & (POLLOUT | POLLHUP | POLLERR))) {
      r = nbd_aio_notify_write(h);
    }
    if (r == -1) return Status::Unavailable(LibnbdError());
  }
}

// Drives `h` until its handshake, or the option it negotiates, is over.
Status DriveHandshake(Env* env, nbd_handle* h, Deadline deadline) {
  return Drive(env, h, deadline, [h] { return nbd_aio_is_connecting(h) == 1 ? 0 : 1; });
}

// The (length, flags) pairs one block status reply gave for a context.
// Shared with libnbd, which may call back after a caller gave up waiting.
struct Extents {
  std::string context;
  std::vector<uint32_t> entries;
};

int CollectExtents(void* user, const char* context, uint64_t /*offset*/, uint32_t* entries,
                   size_t count, int* /*error*/) {
  Extents& e = **static_cast<std::shared_ptr<Extents>*>(user);
  if (e.context == context) e.entries.insert(e.entries.end(), entries, entries + count);
  return 0;
}

void FreeExtents(void* user) { delete static_cast<std::shared_ptr<Extents>*>(user); }

}  // namespace

void NbdReader::HandleCloser::operator()(nbd_handle* h) const { nbd_close(h); }

Status CheckNbdClientTlsDir(Env* env, const std::string& dir) {
  std::string missing;
  for (const char* file : kNbdClientTlsFiles) {
    if (env->FileExists(dir + "/" + file)) continue;
    missing += (missing.empty() ? "" : ", ") + std::string(file);
  }
  if (missing.empty()) return Status::Ok();
  return Status::NotFound(dir + " has no " + missing);
}

Result<std::unique_ptr<NbdReader>> NbdReader::Open(Env* env, const std::string& socket,
                                                   const std::string& export_name,
                                                   const std::string& context, Deadline deadline) {
  return Connect(env, "export \"" + export_name + "\" at " + socket, export_name, context, deadline,
                 [&](nbd_handle* h) {
                   return nbd_aio_connect_unix(h, socket.c_str()) == -1
                              ? Status::Unavailable(LibnbdError())
                              : Status::Ok();
                 });
}

Result<std::unique_ptr<NbdReader>> NbdReader::OpenTls(Env* env, const NbdTlsServer& server,
                                                      const std::string& export_name,
                                                      const std::string& context,
                                                      Deadline deadline) {
  const std::string port = std::to_string(server.port);
  std::string name = "export \"" + export_name + "\" at " + server.host + ":" + port + " (TLS)";
  if (server.host.empty() || server.port < 1 || server.port > 65535) {
    return Status::InvalidArgument("no TCP host and port to connect to").Annotate(name);
  }
  if (server.tls_dir.empty() || server.tls_dir[0] != '/') {
    return Status::InvalidArgument("the TLS directory \"" + server.tls_dir +
                                   "\" is not an absolute path")
        .Annotate(name);
  }
  return Connect(env, std::move(name), export_name, context, deadline, [&](nbd_handle* h) {
    // Required, not merely allowed: a server that does not speak TLS is
    // not the one named.
    if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1 ||
        nbd_set_tls_certificates(h, server.tls_dir.c_str()) == -1) {
      return Status::NotSupported(LibnbdError());
    }
    return nbd_aio_connect_tcp(h, server.host.c_str(), port.c_str()) == -1
               ? Status::Unavailable(LibnbdError())
               : Status::Ok();
  });
}

Result<std::unique_ptr<NbdReader>> NbdReader::Connect(
    Env* env, std::string name, const std::string& export_name, const std::string& context,
    Deadline deadline, const std::function<Status(nbd_handle*)>& connect) {
  // Set by the handshake's completion; declared before the handle, whose
  // close may still call back.
  int go_error = 0;
  Handle h(nbd_create());
  if (!h) return Status::IoError("nbd_create: " + LibnbdError());
  // Option mode: a refused export leaves the handshake in negotiation with
  // the server's reason, rather than a dead connection like a lost one.
  if (nbd_set_export_name(h.get(), export_name.c_str()) == -1 ||
      nbd_set_opt_mode(h.get(), true) == -1 ||
      (!context.empty() && nbd_add_meta_context(h.get(), context.c_str()) == -1)) {
    return Status::InvalidArgument(LibnbdError()).Annotate(name);
  }
  VMG_RETURN_IF_ERROR(connect(h.get()).Annotate(name));
  VMG_RETURN_IF_ERROR(DriveHandshake(env, h.get(), deadline).Annotate(name));
  const nbd_completion_callback on_go{.callback =
                                          [](void* user, int* error) {
                                            *static_cast<int*>(user) = *error;
                                            return 1;
                                          },
                                      .user_data = &go_error,
                                      .free = nullptr};
  if (nbd_aio_opt_go(h.get(), on_go) == -1) return CallFailed(h.get()).Annotate(name);
  VMG_RETURN_IF_ERROR(DriveHandshake(env, h.get(), deadline).Annotate(name));
  if (nbd_aio_is_ready(h.get()) != 1) {
    if (go_error == ENOENT) return Status::NotFound("the server has no such export").Annotate(name);
    return Status::Failed(std::string("the server refused the export: ") +
                          (go_error != 0 ? std::strerror(go_error) : "no reason given"))
        .Annotate(name);
  }
  if (!context.empty()) {
    const int offered = nbd_can_meta_context(h.get(), context.c_str());
    if (offered == -1) return Status::Failed(LibnbdError()).Annotate(name);
    if (offered == 0) {
      return Status::NotFound("the server offers no metadata context " + context).Annotate(name);
    }
  }
  const int64_t size = nbd_get_size(h.get());
  if (size < 0) return Status::Failed(LibnbdError()).Annotate(name);
  return std::unique_ptr<NbdReader>(
      new NbdReader(env, std::move(h), std::move(name), context, static_cast<uint64_t>(size)));
}

NbdReader::~NbdReader() = default;

Result<MarkedRanges> NbdReader::Marked(uint64_t offset, uint64_t length, size_t max_ranges,
                                       Deadline deadline) {
  if (context_.empty()) {
    return Status::InvalidArgument(name_ + ": no metadata context was asked for");
  }
  if (length == 0 || offset > size_ || length > size_ - offset) {
    return Status::InvalidArgument(name_ + ": " + std::to_string(length) + " bytes at offset " +
                                   std::to_string(offset) + " are not a range within its " +
                                   std::to_string(size_) + " bytes");
  }
  if (max_ranges == 0) return Status::InvalidArgument("at most 0 ranges asked for");
  nbd_handle* const h = handle_.get();
  const uint64_t end = offset + length;
  MarkedRanges out;
  uint64_t at = offset;
  while (at < end) {
    auto extents = std::make_shared<Extents>(Extents{context_, {}});
    const nbd_extent_callback collect{.callback = CollectExtents,
                                      .user_data = new std::shared_ptr<Extents>(extents),
                                      .free = FreeExtents};
    const int64_t cookie =
        nbd_aio_block_status(h, std::min(end - at, kMaxRequest), at, collect, kNoCompletion, 0);
    if (cookie == -1) return CallFailed(h).Annotate(name_);
    VMG_RETURN_IF_ERROR(Drive(env_, h, deadline, [&] {
                          return nbd_aio_command_completed(h, cookie);
                        }).Annotate(name_));
    // The server may describe less than asked, or its last extent may run
    // past the end: what it described is taken up to `end`.
    uint64_t covered = 0;
    for (size_t i = 0; i + 1 < extents->entries.size() && at + covered < end; i += 2) {
      const uint64_t start = at + covered;
      const uint64_t len = std::min<uint64_t>(extents->entries[i], end - start);
      covered += len;
      if ((extents->entries[i + 1] & 1) == 0 || len == 0) continue;
      ByteRange* last = out.ranges.empty() ? nullptr : &out.ranges.back();
      if (last != nullptr && last->offset + last->length == start) {
        last->length += len;
      } else if (out.ranges.size() == max_ranges) {
        out.processed = start - offset;
        return out;
      } else {
        out.ranges.push_back({start, len});
      }
    }
    if (covered == 0) {
      return Status::Failed(name_ + ": the server described nothing of " + context_ +
                            " at offset " + std::to_string(at));
    }
    at += covered;
  }
  out.processed = length;
  return out;
}

}  // namespace vmgroup::storage
