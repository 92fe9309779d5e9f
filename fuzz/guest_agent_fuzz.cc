// What qemu-ga in a guest answers (the guest controls it: anything may come):
// the input is all the agent sends on one connection, served by a PeerSocket
// once GuestAgent has written its resynchronisation (0xFF, then
// guest-sync-delimited with a random id, as vmg-1). Every "SYNC_ID" in the
// input becomes that id, so seeds (corpus/guest_agent/) get past the sync as
// a real agent does. Then freeze (vmg-2), status (vmg-3), thaw (vmg-4) and
// status (vmg-5); a count GuestAgent hands on must be one qemu-ga can mean.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "hypervisor/qemu/guest_agent.h"
#include "peer_socket.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// Never reached: the peer ends every connection, so a client waiting this
// long is stuck, and libFuzzer's -timeout (shorter) reports it.
Deadline Never() { return Clock::now() + std::chrono::minutes(10); }

// `bytes` with every SYNC_ID replaced by the id the client's sync command
// (its first line, after the 0xFF) carries.
std::string WithSyncId(std::string bytes, const std::string& first_line) {
  const size_t brace = first_line.find('{');
  if (brace == std::string::npos) return bytes;
  const Json sync = Json::parse(first_line.substr(brace), nullptr, /*allow_exceptions=*/false);
  const std::string id = sync.is_object() ? sync["arguments"]["id"].dump() : "";
  const std::string token = "SYNC_ID";
  for (size_t at = bytes.find(token); at != std::string::npos; at = bytes.find(token, at)) {
    bytes.replace(at, token.size(), id);
    at += id.size();
  }
  return bytes;
}

// A number of filesystems below zero is no count (GuestAgent's contract).
void ExpectCount(const Result<int>& n) {
  if (n.ok() && *n < 0) std::abort();
}

void Drive(const std::string& socket) {
  auto agent = GuestAgent::Connect(Env::Default(), socket, Never());
  if (!agent.ok()) return;
  ExpectCount((*agent)->Freeze(Never()));
  (void)(*agent)->Frozen(Never());
  ExpectCount((*agent)->Thaw(Never()));
  (void)(*agent)->Frozen(Never());
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vmgroup::fuzz::PeerSocket peer;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  peer.Answer(
      [&bytes](const std::string& first_line) {
        return vmgroup::hypervisor::qemu::WithSyncId(bytes, first_line);
      },
      /*after_first_line=*/true);
  vmgroup::hypervisor::qemu::Drive(peer.path());
  peer.Served();
  return 0;
}
