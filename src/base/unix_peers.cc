#include "base/unix_peers.h"

#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <string_view>

namespace vmgroup {
namespace {

constexpr char kTable[] = "/proc/net/unix";
// The columns of a line, after its first (the kernel's address of the
// socket), as net/unix/af_unix.c prints them: "%08X: %08X %08X %08X %04X
// %02X %5lu" then " path" for a bound socket.
constexpr unsigned kAcceptCon = 0x10000;  // __SO_ACCEPTCON: a listening socket
constexpr unsigned kStream = 1;           // SOCK_STREAM
constexpr unsigned kConnecting = 2;       // SS_CONNECTING: in a listener's backlog
constexpr unsigned kConnected = 3;        // SS_CONNECTED

}  // namespace

Result<int> ConnectedPeers(Env* env, const std::string& path) {
  VMG_ASSIGN_OR_RETURN(const std::string table, env->ReadFile(kTable));
  std::istringstream lines(table);
  std::string line;
  std::getline(lines, line);  // the column names
  int peers = 0;
  while (std::getline(lines, line)) {
    unsigned refs = 0, protocol = 0, flags = 0, type = 0, state = 0;
    uint64_t inode = 0;
    int path_at = -1;
    // %n after the inode: where the path begins (one space on), if any.
    if (std::sscanf(line.c_str(), "%*x: %x %x %x %x %x %" SCNu64 "%n", &refs, &protocol, &flags,
                    &type, &state, &inode, &path_at) != 6 ||
        path_at < 0) {
      return Status::IoError(std::string("cannot parse a line of ") + kTable + ": " + line);
    }
    if (static_cast<size_t>(path_at) + 1 >= line.size() ||
        std::string_view(line).substr(static_cast<size_t>(path_at) + 1) != path) {
      continue;
    }
    if (type == kStream && (flags & kAcceptCon) == 0 &&
        (state == kConnected || state == kConnecting)) {
      ++peers;
    }
  }
  return peers;
}

}  // namespace vmgroup
