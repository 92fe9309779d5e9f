#include "hypervisor/qemu/nbd_serving.h"

#include "hypervisor/qemu/qmp_commands.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// The name QEMU keeps the NBD server's listening socket under until the
// server takes it.
constexpr char kNbdFd[] = "vmg-nbd";

}  // namespace

Status CheckTrustedBitmap(QmpClient& c, const std::string& node, const std::string& image,
                          const std::string& name, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto bitmaps, qmp::QueryBitmaps(c, node, deadline));
  for (const auto& b : bitmaps) {
    if (b.name != name) continue;
    if (!b.inconsistent) return Status::Ok();
    return Status::InvalidState("bitmap " + name + " of " + image +
                                " cannot be trusted: QEMU marks it inconsistent");
  }
  return Status::NotFound(image + " has no bitmap " + name);
}

Status StartNbdServer(QmpClient& c, int listener, Deadline deadline) {
  VMG_RETURN_IF_ERROR(qmp::GetFd(c, kNbdFd, listener, deadline));
  Status started = qmp::NbdServerStart(c, kNbdFd, deadline);
  if (started.ok()) return started;
  (void)qmp::CloseFd(c, kNbdFd, deadline);  // not taken: QEMU's copy goes
  return started.code() == Code::kAlreadyExists
             ? Status::AlreadyExists("the VM serves already: " + started.message())
             : started;
}

Result<std::vector<ServedExport>> ExportNodes(QmpClient& c, const std::vector<ServedNode>& nodes,
                                              const std::vector<ServedImage>& images,
                                              Deadline deadline) {
  std::vector<ServedExport> exports;
  for (size_t i = 0; i < images.size(); ++i) {
    const ServedImage& image = images[i];
    // Export ids are QEMU ids (letters, digits, '-'...): not the export names.
    VMG_RETURN_IF_ERROR(qmp::BlockExportAddNbd(c, "vmg-export-" + std::to_string(i), nodes[i].node,
                                               image.export_name, image.tracking, deadline)
                            .Annotate("serving " + image.image));
    exports.push_back(
        {nodes[i].size, image.tracking.empty() ? "" : "qemu:dirty-bitmap:" + image.tracking});
  }
  return exports;
}

Status EndNbdServing(QmpClient& c, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto exports, qmp::QueryBlockExports(c, deadline));
  for (const auto& e : exports) {
    if (!e.shutting_down) VMG_RETURN_IF_ERROR(qmp::BlockExportDel(c, e.id, deadline));
  }
  // An export holds its node (and its bitmap busy) until it is gone: a
  // merge right after would find the image in use.
  while (!exports.empty()) {
    if (c.env()->Now() >= deadline) {
      return Status::Timeout("export " + exports[0].id + " did not end in time");
    }
    c.env()->SleepFor(std::chrono::milliseconds(2));
    VMG_ASSIGN_OR_RETURN(exports, qmp::QueryBlockExports(c, deadline));
  }
  Status stopped = qmp::NbdServerStop(c, deadline);
  return stopped.code() == Code::kNotFound ? Status::Ok() : stopped;
}

}  // namespace vmgroup::hypervisor::qemu
