#include "testing/guest_io.h"

#include "hypervisor/qemu/qmp_client.h"

namespace vmgroup::testing {

std::vector<std::string> GuestMonitorArgs(const std::string& path) {
  return {"-qmp", "unix:" + path + ",server=on,wait=off"};
}

Status WriteAsGuest(const std::string& monitor, int disk, int pattern, uint64_t offset,
                    uint64_t length) {
  Env* env = Env::Default();
  const Deadline deadline = env->Now() + std::chrono::seconds(10);
  VMG_ASSIGN_OR_RETURN(auto qmp, hypervisor::qemu::QmpClient::Connect(env, monitor, deadline));
  const std::string io = "qemu-io -d /machine/peripheral/vd" + std::to_string(disk) +
                         "/virtio-backend \"write -P " + std::to_string(pattern) + " " +
                         std::to_string(offset) + " " + std::to_string(length) + "\"";
  VMG_ASSIGN_OR_RETURN(auto r,
                       qmp->Execute("human-monitor-command", {{"command-line", io}}, deadline));
  // HMP answers with the text it would print: empty when the write worked.
  if (!r.is_string() || !r.get<std::string>().empty()) {
    return Status::IoError(io + ": " + r.dump());
  }
  return Status::Ok();
}

Status WriteSpreadClusters(const std::string& monitor, uint64_t bytes, double pct, int pattern) {
  constexpr uint64_t kCluster = 64 << 10;
  const uint64_t clusters = bytes / kCluster;
  const auto n = static_cast<uint64_t>(static_cast<double>(clusters) * pct / 100.0);
  for (uint64_t k = 0; k < n; ++k) {
    VMG_RETURN_IF_ERROR(WriteAsGuest(monitor, 0, pattern, k * clusters / n * kCluster, kCluster));
  }
  return Status::Ok();
}

}  // namespace vmgroup::testing
