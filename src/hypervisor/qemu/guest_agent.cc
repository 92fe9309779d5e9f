#include "hypervisor/qemu/guest_agent.h"

#include <random>

namespace vmgroup::hypervisor::qemu {

std::vector<std::string> GuestAgent::ChannelArgs(const std::string& address) {
  return {
      "-device",  "virtio-serial-pci,id=vmg-serial",
      "-chardev", "socket,id=vmg-agent," + address + ",server=on,wait=off",
      "-device",  "virtserialport,bus=vmg-serial.0,chardev=vmg-agent,name=org.qemu.guest_agent.0"};
}

Result<std::unique_ptr<GuestAgent>> GuestAgent::Connect(const std::string& socket_path,
                                                        Deadline deadline) {
  auto channel = QmpClient::ConnectAgent(socket_path);
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
  if (!r->is_number_integer() || r->get<int64_t>() != id) {
    return Status::Unavailable("the guest agent answered guest-sync with " + r->dump());
  }
  return agent;
}

Result<int> GuestAgent::Count(const char* command, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(Json r, channel_->Execute(command, deadline));
  if (!r.is_number_integer()) {
    return Status::Failed(std::string(command) + " answered " + r.dump());
  }
  return r.get<int>();
}

Result<int> GuestAgent::Freeze(Deadline deadline) {
  auto n = Count("guest-fsfreeze-freeze", deadline);
  if (n.status().code() == Code::kTimeout) {
    // Queued behind the freeze: the guest thaws as soon as it is frozen.
    (void)channel_->Send({{"guest-fsfreeze-thaw", Json::object()}},
                         Clock::now() + std::chrono::seconds(1));
  }
  return n;
}

Result<int> GuestAgent::Thaw(Deadline deadline) { return Count("guest-fsfreeze-thaw", deadline); }

Result<bool> GuestAgent::Frozen(Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(Json r, channel_->Execute("guest-fsfreeze-status", deadline));
  if (!r.is_string()) return Status::Failed("guest-fsfreeze-status answered " + r.dump());
  return r.get<std::string>() == "frozen";
}

}  // namespace vmgroup::hypervisor::qemu
