#include "base/tcp_peers.h"

#include <cstdio>
#include <sstream>
#include <string>

namespace vmgroup {
namespace {

constexpr const char* kTables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
// The states of include/net/tcp_states.h that hold a client.
constexpr unsigned kEstablished = 0x01;
constexpr unsigned kSynRecv = 0x03;
constexpr unsigned kCloseWait = 0x08;

}  // namespace

Result<int> ConnectedTcpPeers(Env* env, int port) {
  int peers = 0;
  for (const char* path : kTables) {
    if (!env->FileExists(path)) continue;
    VMG_ASSIGN_OR_RETURN(const std::string table, env->ReadFile(path));
    std::istringstream lines(table);
    std::string line;
    std::getline(lines, line);  // the column names
    while (std::getline(lines, line)) {
      // "%4d: %08X:%04X %08X:%04X %02X ..." (tcp6: 32 hex digits of
      // address): the local address, its port, the remote's, the state.
      unsigned local_port = 0, remote_port = 0, state = 0;
      if (std::sscanf(line.c_str(), " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x", &local_port,
                      &remote_port, &state) != 3) {
        return Status::IoError(std::string("cannot parse a line of ") + path + ": " + line);
      }
      if (static_cast<int>(local_port) == port &&
          (state == kEstablished || state == kSynRecv || state == kCloseWait)) {
        ++peers;
      }
    }
  }
  return peers;
}

}  // namespace vmgroup
