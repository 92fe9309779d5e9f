#include "hypervisor/qemu/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/socket_io.h"
#include "base/unix_socket.h"
#include "base/validate.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// Events kept when nobody waits for them; older ones are dropped first.
constexpr size_t kMaxQueuedEvents = 1024;
// A single QMP message larger than this means the peer is not QEMU.
constexpr size_t kMaxMessageBytes = 64 << 20;
// Deepest JSON a message may nest. QEMU's deepest replies describe a backing
// chain, one level per image: far below this for any chain vmgroup keeps,
// and far above what a thread's stack could not take.
constexpr int kMaxNesting = 1000;

// What an "error" member says, for a person: its description, or a note
// that QEMU sent none (never the whole member, which may be anything).
std::string ErrorText(const Json& error) {
  if (error.is_object()) {
    if (auto desc = error.find("desc"); desc != error.end() && desc->is_string()) {
      return Printable(desc->get<std::string>().substr(0, 500));
    }
  }
  return "QEMU refused it without a description";
}

// Sends the first byte of `data` with a copy of `fd` attached (QEMU takes
// descriptors from the message that carries them), then the rest.
Status SendWithFd(Env* env, int socket, std::string_view data, int fd, Deadline deadline) {
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<char*>(data.data()), 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  while (true) {
    pollfd p{socket, POLLOUT, 0};
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - env->Now());
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (ready == 0) return Status::Timeout("QMP write timed out");
    if (ready > 0) {
      const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
      if (n == 1) break;
      if (n >= 0 || (errno != EINTR && errno != EAGAIN)) {
        return Status::Unavailable(std::string("sendmsg: ") + std::strerror(errno));
      }
    } else if (errno != EINTR) {
      return Status::IoError(std::string("poll: ") + std::strerror(errno));
    }
  }
  return vmgroup::WriteAll(env, socket, data.substr(1), deadline);
}

}  // namespace

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(Env* env, const std::string& socket_path,
                                                      Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(env, socket_path, deadline));
  std::unique_ptr<QmpClient> client(new QmpClient(env, std::move(fd)));
  // Events QEMU emitted while the previous client was leaving (a block job
  // moving on, say) can reach the next client ahead of its greeting.
  do {
    VMG_ASSIGN_OR_RETURN(client->greeting_, client->ReadMessage(deadline));
  } while (client->greeting_.contains("event"));
  if (!client->greeting_.contains("QMP")) {
    return Status::Unavailable(socket_path + " is not a QMP monitor");
  }
  VMG_RETURN_IF_ERROR(client->Execute("qmp_capabilities", deadline).status());
  return client;
}

Result<std::unique_ptr<QmpClient>> QmpClient::ConnectAgent(Env* env,
                                                           const std::string& socket_path) {
  VMG_ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(env, socket_path, env->Now()));
  return std::unique_ptr<QmpClient>(new QmpClient(env, std::move(fd)));
}

Status QmpClient::WriteAll(const std::string& data, Deadline deadline, int fd) {
  Status s = fd < 0 || data.empty() ? vmgroup::WriteAll(env_, fd_.get(), data, deadline)
                                    : SendWithFd(env_, fd_.get(), data, fd, deadline);
  if (s.code() == Code::kUnavailable) {
    closed_ = true;
    return Status::Unavailable("QMP connection lost: " + s.message());
  }
  return s.code() == Code::kTimeout ? Status::Timeout("QMP write timed out") : s;
}

Result<Json> QmpClient::ReadMessage(Deadline deadline) {
  while (true) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      // A guest agent puts 0xFF before its answer to guest-sync-delimited;
      // what came before it is stale.
      if (auto ff = line.rfind('\xff'); ff != std::string::npos) line.erase(0, ff + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      // No reply of QEMU's nests deeply; a line that does would cost the
      // stack of every later copy of it: its deep parts are dropped while
      // parsing and the line refused.
      bool too_deep = false;
      Json msg = Json::parse(
          line,
          [&too_deep](int depth, Json::parse_event_t, Json&) {
            if (depth > kMaxNesting) too_deep = true;
            return depth <= kMaxNesting;
          },
          /*allow_exceptions=*/false);
      if (too_deep) {
        return Status::Unavailable("QMP sent JSON nested over " + std::to_string(kMaxNesting) +
                                   " levels deep");
      }
      if (msg.is_discarded() || !msg.is_object()) {
        return Status::Unavailable("QMP sent something that is not JSON: " +
                                   Printable(line.substr(0, 200), true));
      }
      return msg;
    }
    if (closed_) return Status::Unavailable("QMP connection closed (QEMU exited?)");
    if (buffer_.size() > kMaxMessageBytes) return Status::Unavailable("QMP message too large");
    Status s = ReadSome(env_, fd_.get(), deadline, &buffer_);
    if (s.code() == Code::kUnavailable) {
      closed_ = true;  // hand out whole lines still buffered, then report the close
    } else if (s.code() == Code::kTimeout) {
      return Status::Timeout("no answer in time");
    } else if (!s.ok()) {
      return s;
    }
  }
}

std::string QmpClient::Message(std::string_view command, const Json& arguments, std::string* id) {
  *id = "vmg-" + std::to_string(next_id_++);
  Json msg = {{"execute", command}, {"id", *id}};
  if (!arguments.empty()) msg["arguments"] = arguments;
  return msg.dump() + "\n";
}

Result<Json> QmpClient::AwaitReply(std::string_view command, const std::string& id,
                                   Deadline deadline) {
  while (true) {
    auto reply = ReadMessage(deadline);
    if (!reply.ok()) return reply.status().Annotate(std::string(command));
    Json& m = reply.value();
    if (m.contains("event")) {
      if (events_.size() >= kMaxQueuedEvents) events_.pop_front();
      events_.push_back(std::move(m));
      continue;
    }
    // Not ours: the late reply of a command that timed out (or a malformed one).
    if (auto got = m.find("id"); got == m.end() || !got->is_string() || *got != id) continue;
    if (auto err = m.find("error"); err != m.end()) {
      return Status::Failed(std::string(command) + ": " + ErrorText(*err));
    }
    if (auto ret = m.find("return"); ret != m.end()) return std::move(*ret);
    return Json::object();
  }
}

Result<Json> QmpClient::Execute(std::string_view command, const Json& arguments, Deadline deadline,
                                int fd) {
  std::string id;
  VMG_RETURN_IF_ERROR(
      WriteAll(Message(command, arguments, &id), deadline, fd).Annotate(std::string(command)));
  return AwaitReply(command, id, deadline);
}

Result<std::vector<std::string>> QmpClient::Send(
    const std::vector<std::pair<std::string, Json>>& commands, Deadline deadline, int fd) {
  std::string batch;
  std::vector<std::string> ids(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    batch += Message(commands[i].first, commands[i].second, &ids[i]);
  }
  VMG_RETURN_IF_ERROR(WriteAll(batch, deadline, fd));
  return ids;
}

Result<Json> QmpClient::WaitEvent(std::string_view name, Deadline deadline) {
  while (true) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if ((*it)["event"] == name) {
        Json e = std::move(*it);
        events_.erase(it);
        return e;
      }
    }
    auto m = ReadMessage(deadline);
    if (!m.ok()) return m.status().Annotate("waiting for " + std::string(name));
    if (m->contains("event")) {
      if (events_.size() >= kMaxQueuedEvents) events_.pop_front();
      events_.push_back(std::move(m).value());
    }
  }
}

}  // namespace vmgroup::hypervisor::qemu
