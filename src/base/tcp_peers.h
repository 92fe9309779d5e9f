// How many clients a TCP server has on a port, read from the kernel's
// tables of TCP sockets (/proc/net/tcp and /proc/net/tcp6): how a backup
// session served over TCP tells it is idle, as unix_peers.h does for one
// on a unix socket, without the server's help.
#pragma once

#include "base/env.h"
#include "base/result.h"

namespace vmgroup {

// The number of TCP connections whose local end is port `port` in this
// process's network namespace, IPv4 and IPv6 alike: those established,
// those whose handshake is under way, and those the client closed but the
// server still holds open (as unix_peers counts a client that has gone
// until the server closes its end); listening sockets are not counted.
// Reads the tables through `env` (env->ReadFile); a table that does not
// exist (IPv6 disabled) counts nothing.
// OK: the count, 0 when nobody is connected. IoError: a table cannot be
// read, or a line of it cannot be parsed.
Result<int> ConnectedTcpPeers(Env* env, int port);

}  // namespace vmgroup
