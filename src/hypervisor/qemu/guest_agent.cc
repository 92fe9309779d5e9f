#include "hypervisor/qemu/guest_agent.h"

#include <climits>
#include <random>

namespace vmgroup::hypervisor::qemu {
namespace {

// At most this many characters of a string reply go into a message.
constexpr size_t kExcerptChars = 80;

// A reply for a message, in ASCII with escapes spelled out: scalars as JSON,
// a long string cut short, arrays and objects by their size only (writing
// out what a guest nested deeply would recurse as deep).
std::string Excerpt(const Json& reply) {
  auto dump = [](const Json& j) {
    return j.dump(-1, ' ', /*ensure_ascii=*/true, Json::error_handler_t::replace);
  };
  if (reply.is_structured()) {
    return std::string(reply.type_name()) + " of " + std::to_string(reply.size()) + " elements";
  }
  if (reply.is_string() && reply.get_ref<const std::string&>().size() > kExcerptChars) {
    return dump(reply.get_ref<const std::string&>().substr(0, kExcerptChars)) + "...";
  }
  return dump(reply);
}

}  // namespace

namespace agent_reply {

Status Synced(const Json& reply, int64_t id) {
  if (!reply.is_number_integer() || reply.get<int64_t>() != id) {
    return Status::Unavailable("the guest agent answered guest-sync with " + Excerpt(reply));
  }
  return Status::Ok();
}

Result<int> Count(std::string_view command, const Json& reply) {
  const bool negative =
      reply.is_number_integer() && !reply.is_number_unsigned() && reply.get<int64_t>() < 0;
  if (!reply.is_number_integer() || negative || reply.get<uint64_t>() > INT_MAX) {
    return Status::Failed(std::string(command) + " answered " + Excerpt(reply) +
                          ", not a number of filesystems");
  }
  return static_cast<int>(reply.get<uint64_t>());
}

Result<bool> Frozen(const Json& reply) {
  if (reply == "frozen") return true;
  if (reply == "thawed") return false;
  return Status::Failed("guest-fsfreeze-status answered " + Excerpt(reply));
}

}  // namespace agent_reply

std::vector<std::string> GuestAgent::ChannelArgs(const std::string& address) {
  return {
      "-device",  "virtio-serial-pci,id=vmg-serial",
      "-chardev", "socket,id=vmg-agent," + address + ",server=on,wait=off",
      "-device",  "virtserialport,bus=vmg-serial.0,chardev=vmg-agent,name=org.qemu.guest_agent.0"};
}

Result<std::unique_ptr<GuestAgent>> GuestAgent::Connect(Env* env, const std::string& socket_path,
                                                        Deadline deadline) {
  auto channel = QmpClient::ConnectAgent(env, socket_path);
  if (!channel.ok()) {
    return Status::Unavailable("no guest agent channel: " + channel.status().message());
  }
  std::unique_ptr<GuestAgent> agent(new GuestAgent(std::move(channel).value()));
  // 0xFF resets the agent's parser after a half-written command; the id
  // tells this sync's answer from any stale one.
  static thread_local std::mt19937_64 random{std::random_device{}()};
  const int64_t id = static_cast<int64_t>(random() >> 2);
  Status s = agent->channel_->WriteRaw("\xff", deadline);
  Result<Json> r = s.ok() ? agent->channel_->Execute("guest-sync-delimited", {{"id", id}}, deadline)
                          : Result<Json>(s);
  if (!r.ok()) {
    return Status::Unavailable("no guest agent answers (" + r.status().message() +
                               "): is qemu-ga installed and running in the guest?");
  }
  VMG_RETURN_IF_ERROR(agent_reply::Synced(*r, id));
  return agent;
}

Result<int> GuestAgent::Count(const char* command, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(Json r, channel_->Execute(command, deadline));
  return agent_reply::Count(command, r);
}

Result<int> GuestAgent::Freeze(Deadline deadline) {
  auto n = Count("guest-fsfreeze-freeze", deadline);
  if (n.status().code() == Code::kTimeout) {
    // Queued behind the freeze: the guest thaws as soon as it is frozen.
    (void)channel_->Send({{"guest-fsfreeze-thaw", Json::object()}},
                         channel_->env()->Now() + std::chrono::seconds(1));
  }
  return n;
}

Result<int> GuestAgent::Thaw(Deadline deadline) { return Count("guest-fsfreeze-thaw", deadline); }

Result<bool> GuestAgent::Frozen(Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(Json r, channel_->Execute("guest-fsfreeze-status", deadline));
  return agent_reply::Frozen(r);
}

}  // namespace vmgroup::hypervisor::qemu
