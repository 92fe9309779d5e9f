// GuestAgent: the QEMU guest agent (qemu-ga) inside a guest, reached through
// the VM's agent channel (a virtio-serial port QEMU exposes as a unix
// socket). Used for what only the guest can do: flush and freeze its
// filesystems for an application-consistent cut, and thaw them.
//
// The channel is a byte stream that outlives both ends: a reply to a command
// that timed out, or half a command, may still sit in it. Connect therefore
// resynchronises first (0xFF, then guest-sync-delimited with a fresh id) and
// only then trusts what it reads.
//
// Not thread-safe: one owner at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/result.h"
#include "hypervisor/qemu/qmp_client.h"

namespace vmgroup::hypervisor::qemu {

// What the agent's replies mean, apart from the channel they come on: pure
// functions of the "return" value of a reply. The guest controls the agent,
// so anything may arrive; what qemu-ga never sends is refused, and a refusal
// quotes at most a short excerpt of the reply (ASCII, escapes spelled out).
// fuzz/guest_agent_fuzz.cc tries them on arbitrary replies.
namespace agent_reply {
// guest-sync-delimited must echo `id`; Unavailable otherwise.
Status Synced(const Json& reply, int64_t id);
// guest-fsfreeze-freeze and -thaw answer how many filesystems they froze or
// thawed: a whole number from 0 to INT_MAX. Failed, naming `command`, for
// anything else.
Result<int> Count(std::string_view command, const Json& reply);
// guest-fsfreeze-status answers "frozen" (true) or "thawed" (false); Failed
// for anything else.
Result<bool> Frozen(const Json& reply);
}  // namespace agent_reply

class GuestAgent {
 public:
  // Where QEMU exposes the agent channel of a VM whose runtime files are in
  // `run_dir`, and the QEMU arguments that make it on the listening socket
  // `address` names (QEMU option text: "fd=N" for one QEMU is started with).
  // Every VM gets one, used or not, so an agent installed later needs no
  // change to the VM.
  static std::string SocketPath(const std::string& run_dir) { return run_dir + "/agent.sock"; }
  static std::vector<std::string> ChannelArgs(const std::string& address);

  // Connects to the channel at `socket_path` and synchronises with the
  // agent. Unavailable when no agent answers by `deadline`: none is
  // installed or running in the guest, or the guest is not running.
  // `deadline` and every later one are on env's clock.
  // REQUIRES: `env` outlives the agent.
  static Result<std::unique_ptr<GuestAgent>> Connect(Env* env, const std::string& socket_path,
                                                     Deadline deadline);

  // guest-fsfreeze-freeze: flushes and freezes every filesystem the guest
  // has mounted; returns how many. On Timeout a thaw is sent at once (the
  // agent runs it right after the freeze ends), so a guest is never left
  // frozen by a freeze nobody waited for. Failed with the agent's reason.
  Result<int> Freeze(Deadline deadline);
  // guest-fsfreeze-thaw: returns how many filesystems were thawed (0 when
  // none was frozen).
  Result<int> Thaw(Deadline deadline);
  // guest-fsfreeze-status: true while the guest's filesystems are frozen.
  Result<bool> Frozen(Deadline deadline);

  // The channel's descriptor, for a thaw guard to keep a copy of.
  int fd() const { return channel_->fd(); }

 private:
  explicit GuestAgent(std::unique_ptr<QmpClient> channel) : channel_(std::move(channel)) {}
  Result<int> Count(const char* command, Deadline deadline);

  std::unique_ptr<QmpClient> channel_;
};

}  // namespace vmgroup::hypervisor::qemu
