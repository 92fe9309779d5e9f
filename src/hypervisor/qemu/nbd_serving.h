// Serving block nodes over NBD through a QEMU monitor: what a VM's QEMU
// (QemuVm::ServeImages) and a qemu-storage-daemon serving a VM that is off
// (storage_daemon.h) do alike once they know each image's node.
#pragma once

#include <string>
#include <vector>

#include "hypervisor/driver.h"
#include "hypervisor/qemu/listen_socket.h"
#include "hypervisor/qemu/qmp_client.h"

namespace vmgroup::hypervisor::qemu {

// A node to serve and its virtual size in bytes.
struct ServedNode {
  std::string node;
  uint64_t size = 0;
};

// OK when node `node` (of file `image`) has bitmap `name` and QEMU trusts
// it; NotFound when it has none, InvalidState when QEMU marks it
// inconsistent (stored unsaved by a QEMU that died).
Status CheckTrustedBitmap(QmpClient& c, const std::string& node, const std::string& image,
                          const std::string& name, Deadline deadline);

// The id of the TLS credentials a TCP serving's server speaks with.
inline constexpr char kNbdTlsCreds[] = "vmg-nbd-tls";

// The listening socket of a serving at `at` (NbdListen): a unix socket at
// `at.path` (AlreadyExists when a file is there), or TCP on `at.tcp_host`
// (InvalidArgument without `at.tls_dir`: never plain NBD over TCP).
Result<Listener> ListenFor(const NbdListen& at);

// Starts QEMU's NBD server on `listener` (passed with getfd: QEMU takes a
// copy), speaking only TLS, with credentials kNbdTlsCreds made from the
// files in `tls_dir`, unless `tls_dir` is "". AlreadyExists when a server
// runs already: left as it is. On an error nothing of this call is left.
Status StartNbdServer(QmpClient& c, int listener, const std::string& tls_dir, Deadline deadline);

// Exports `nodes[i]` as `images[i]` asks (name, bitmap) from the server
// that runs (on TCP `port`, 0 on a unix socket). On error what was
// exported is left: the caller ends it (EndNbdServing).
Result<std::vector<ServedExport>> ExportNodes(QmpClient& c, const std::vector<ServedNode>& nodes,
                                              const std::vector<ServedImage>& images, int port,
                                              Deadline deadline);

// Deletes every export, waits until each is gone (an export holds its node
// and bitmap busy until then), stops the server and deletes its TLS
// credentials: OK when none runs.
Status EndNbdServing(QmpClient& c, Deadline deadline);

}  // namespace vmgroup::hypervisor::qemu
