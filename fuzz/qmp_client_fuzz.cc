// A QEMU monitor that says anything (a guest that broke out into QEMU is not
// trusted either): the input is all QMP sends on one connection, served by a
// PeerSocket, while QmpClient connects (greeting, qmp_capabilities as vmg-1)
// and then runs every query whose reply vmgroup reads (qmp_commands.h), a
// pipelined stop + cont, and waits for an event. Ids go vmg-1, vmg-2, ... in
// the order below, so a seed (corpus/qmp_client/) is what real QEMU answered
// to exactly this sequence.
#include <cstddef>
#include <cstdint>
#include <string>

#include "hypervisor/qemu/qmp_client.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "peer_socket.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// Never reached: the peer ends every connection, so a client waiting this
// long is stuck, and libFuzzer's -timeout (shorter) reports it.
Deadline Never() { return Clock::now() + std::chrono::minutes(10); }

void Drive(const std::string& socket) {
  auto client = QmpClient::Connect(Env::Default(), socket, Never());
  if (!client.ok()) return;
  QmpClient& c = **client;
  (void)qmp::QueryStatus(c, Never());           // vmg-2
  (void)qmp::QueryBlock(c, Never());            // vmg-3
  (void)qmp::QueryNodeNames(c, Never());        // vmg-4
  (void)qmp::QueryFormatNodes(c, Never());      // vmg-5
  (void)qmp::QueryBitmaps(c, "d0", Never());    // vmg-6
  (void)qmp::QueryMigrate(c, Never());          // vmg-7
  (void)qmp::QueryJob(c, "merge-d0", Never());  // vmg-8
  // vmg-9 and vmg-10, in one write.
  auto ids = c.Send({{"stop", Json::object()}, {"cont", Json::object()}}, Never());
  if (ids.ok()) {
    (void)c.AwaitReply("stop", (*ids)[0], Never());
    (void)c.AwaitReply("cont", (*ids)[1], Never());
  }
  (void)c.WaitEvent("RESUME", Never());
  (void)c.TakeEvents();
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vmgroup::fuzz::PeerSocket peer;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  peer.Answer([&bytes](const std::string&) { return bytes; }, /*after_first_line=*/false);
  vmgroup::hypervisor::qemu::Drive(peer.path());
  peer.Served();
  return 0;
}
