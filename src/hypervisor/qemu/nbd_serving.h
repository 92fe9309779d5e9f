// Serving block nodes over NBD through a QEMU monitor: what a VM's QEMU
// (QemuVm::ServeImages) and a qemu-storage-daemon serving a VM that is off
// (storage_daemon.h) do alike once they know each image's node.
#pragma once

#include <string>
#include <vector>

#include "hypervisor/driver.h"
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

// Starts QEMU's NBD server on `listener` (passed with getfd: QEMU takes a
// copy). AlreadyExists when a server runs already: left as it is.
Status StartNbdServer(QmpClient& c, int listener, Deadline deadline);

// Exports `nodes[i]` as `images[i]` asks (name, bitmap) from the server
// that runs. On error what was exported is left: the caller ends it
// (EndNbdServing).
Result<std::vector<ServedExport>> ExportNodes(QmpClient& c, const std::vector<ServedNode>& nodes,
                                              const std::vector<ServedImage>& images,
                                              Deadline deadline);

// Deletes every export, waits until each is gone (an export holds its node
// and bitmap busy until then), and stops the server: OK when none runs.
Status EndNbdServing(QmpClient& c, Deadline deadline);

}  // namespace vmgroup::hypervisor::qemu
