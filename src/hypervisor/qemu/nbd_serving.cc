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

Result<Listener> ListenFor(const NbdListen& at) {
  if (!at.tcp_host.empty()) {
    if (at.tls_dir.empty()) {
      return Status::InvalidArgument("no NBD over TCP on " + at.tcp_host + " without TLS");
    }
    return ListenTcp(at.tcp_host);
  }
  VMG_ASSIGN_OR_RETURN(UniqueFd fd, ListenAt(at.path, ExistingFile::kRefuse));
  return Listener{.fd = std::move(fd)};
}

Status StartNbdServer(QmpClient& c, int listener, const std::string& tls_dir, Deadline deadline) {
  const bool tls = !tls_dir.empty();
  if (tls) {
    Status added = qmp::TlsCredsX509Add(c, kNbdTlsCreds, tls_dir, deadline);
    if (added.code() == Code::kAlreadyExists) {
      return Status::AlreadyExists("the VM serves already: " + added.message());
    }
    VMG_RETURN_IF_ERROR(added.Annotate("the TLS credentials in " + tls_dir));
  }
  // Ours only once added here: a serving under way keeps its own.
  auto drop_tls = [&] {
    if (tls) (void)qmp::ObjectDel(c, kNbdTlsCreds, deadline);
  };
  if (Status got = qmp::GetFd(c, kNbdFd, listener, deadline); !got.ok()) {
    drop_tls();
    return got;
  }
  Status started = qmp::NbdServerStart(c, kNbdFd, tls ? kNbdTlsCreds : "", deadline);
  if (started.ok()) return started;
  (void)qmp::CloseFd(c, kNbdFd, deadline);  // not taken: QEMU's copy goes
  drop_tls();
  return started.code() == Code::kAlreadyExists
             ? Status::AlreadyExists("the VM serves already: " + started.message())
             : started;
}

Result<std::vector<ServedExport>> ExportNodes(QmpClient& c, const std::vector<ServedNode>& nodes,
                                              const std::vector<ServedImage>& images, int port,
                                              Deadline deadline) {
  std::vector<ServedExport> exports;
  for (size_t i = 0; i < images.size(); ++i) {
    const ServedImage& image = images[i];
    // Export ids are QEMU ids (letters, digits, '-'...): not the export names.
    VMG_RETURN_IF_ERROR(qmp::BlockExportAddNbd(c, "vmg-export-" + std::to_string(i), nodes[i].node,
                                               image.export_name, image.tracking, deadline)
                            .Annotate("serving " + image.image));
    exports.push_back(
        {nodes[i].size, image.tracking.empty() ? "" : "qemu:dirty-bitmap:" + image.tracking, port});
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
  if (!stopped.ok() && stopped.code() != Code::kNotFound) return stopped;
  // Only a stopped server lets its credentials go.
  Status deleted = qmp::ObjectDel(c, kNbdTlsCreds, deadline);
  return deleted.code() == Code::kNotFound ? Status::Ok() : deleted;
}

}  // namespace vmgroup::hypervisor::qemu
