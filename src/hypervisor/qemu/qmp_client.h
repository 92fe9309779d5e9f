// QmpClient: one connection to a QEMU monitor (QMP) over a unix socket.
// Reads the greeting, negotiates capabilities, sends commands with ids and
// waits for the reply carrying that id under a deadline. Replies to earlier
// commands that timed out are recognised by their id and dropped, so a slow
// reply never answers a later command. Events are queued as they arrive.
// Every deadline is a point on the clock of the Env the client was made
// with (env->Now()); the waits it does end by that clock.
//
// Not thread-safe: one owner at a time (QemuVm serialises its calls).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/env.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vmgroup::hypervisor::qemu {

using Json = nlohmann::json;

class QmpClient {
 public:
  // Connects to the monitor at `socket_path`, retrying while QEMU has not yet
  // created or opened it, until `deadline`. Unavailable if it never answers.
  // REQUIRES: `env` outlives the client.
  static Result<std::unique_ptr<QmpClient>> Connect(Env* env, const std::string& socket_path,
                                                    Deadline deadline);
  // Connects to a QEMU guest agent's channel: the same JSON lines, but no
  // greeting and no capabilities. Unavailable when nothing listens there.
  // REQUIRES: `env` outlives the client.
  static Result<std::unique_ptr<QmpClient>> ConnectAgent(Env* env, const std::string& socket_path);

  // Runs `command` and returns its "return" value. A QMP error reply becomes
  // Failed with QEMU's description; Timeout past `deadline`; Unavailable when
  // the connection is closed (QEMU exited). With `fd`, a copy of that
  // descriptor goes along with the command (SCM_RIGHTS), for the commands
  // that take one (getfd, add-fd); the caller keeps its own.
  Result<Json> Execute(std::string_view command, const Json& arguments, Deadline deadline,
                       int fd = -1);
  Result<Json> Execute(std::string_view command, Deadline deadline) {
    return Execute(command, Json::object(), deadline);
  }

  // Pipelining: Send writes every command in one write and returns their ids
  // at once; AwaitReply(command, id) then collects each reply, in order. QEMU
  // runs the commands in order but does not stop at a failed one. `fd` as
  // for Execute, for the first command.
  Result<std::vector<std::string>> Send(const std::vector<std::pair<std::string, Json>>& commands,
                                        Deadline deadline, int fd = -1);
  Result<Json> AwaitReply(std::string_view command, const std::string& id, Deadline deadline);

  // Returns the first queued or arriving event named `name`, removing it
  // from the queue. Timeout if none arrives by `deadline`.
  Result<Json> WaitEvent(std::string_view name, Deadline deadline);

  // The events received so far (oldest first); the queue is emptied.
  std::deque<Json> TakeEvents() { return std::exchange(events_, {}); }

  // The greeting QEMU sent ({"QMP": {"version": ...}}).
  const Json& greeting() const { return greeting_; }

  // Writes `bytes` as they are (the guest agent's 0xFF resynchronisation).
  Status WriteRaw(const std::string& bytes, Deadline deadline) {
    return WriteAll(bytes, deadline, -1);
  }

  // The connection's descriptor (a thaw guard keeps a copy of an agent's).
  int fd() const { return fd_.get(); }

  // The Env whose clock the deadlines are on; polling waits sleep through it.
  Env* env() const { return env_; }

 private:
  QmpClient(Env* env, UniqueFd fd) : env_(env), fd_(std::move(fd)) {}
  Result<Json> ReadMessage(Deadline deadline);
  std::string Message(std::string_view command, const Json& arguments, std::string* id);
  // Sends `data`, its first byte with a copy of `fd` when fd >= 0.
  Status WriteAll(const std::string& data, Deadline deadline, int fd);

  Env* const env_;
  UniqueFd fd_;
  std::string buffer_;
  std::deque<Json> events_;
  Json greeting_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
};

}  // namespace vmgroup::hypervisor::qemu
