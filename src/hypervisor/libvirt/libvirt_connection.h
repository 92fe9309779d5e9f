// One open libvirt connection (virConnectPtr), owned: closed when destroyed.
// Also the process-wide pieces every connection needs: libvirt's default
// event loop, run on a thread of its own from the first Open until the
// process ends (keepalive and domain events need it), and libvirt's errors
// kept off stderr (each failed call returns them as a Status instead).
//
// Deadlines: libvirt's client calls block with no timeout of their own.
// Keepalive (5 s x 3) closes a connection whose daemon stopped answering,
// which ends every call waiting on it (Unavailable); a daemon that answers
// keepalives but sits on a call (a domain job lock held elsewhere: up to 30 s
// in libvirt's QEMU driver) cannot be bounded from the client. Callers that
// must return by a deadline run calls on a thread of their own (LibvirtVm).
#pragma once

#include <libvirt/libvirt.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::libvirt {

// The error of the libvirt call that just failed on this thread, as a
// Status saying `what` failed and libvirt's message: NotFound (no such
// domain), InvalidState (the domain's state forbids it), NotSupported,
// Timeout, Unavailable (connection or agent gone), Failed otherwise.
Status LastError(const std::string& what);

class LibvirtConnection {
 public:
  // Opens `uri` read-write. Unavailable with libvirt's message.
  static Result<std::unique_ptr<LibvirtConnection>> Open(const std::string& uri);
  ~LibvirtConnection();
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  virConnectPtr get() const { return conn_; }
  const std::string& uri() const { return uri_; }
  bool alive() const { return virConnectIsAlive(conn_) == 1; }

  // Calls `changed` on the event loop's thread for every domain lifecycle
  // event (defined, undefined, renamed, started, stopped, suspended,
  // resumed) and when the connection closes. Replaces an earlier one.
  Status Watch(std::function<void()> changed);
  // Runs the Watch callback (libvirt's callbacks call it).
  void Notify();

 private:
  LibvirtConnection(std::string uri, virConnectPtr conn) : uri_(std::move(uri)), conn_(conn) {}

  const std::string uri_;
  virConnectPtr conn_;
  int lifecycle_callback_ = -1;
  std::mutex mu_;
  std::function<void()> changed_;  // guarded by mu_
};

// A domain handle, freed when destroyed.
struct DomainDeleter {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
using DomainPtr = std::unique_ptr<virDomain, DomainDeleter>;

// Domain `uuid` on `conn`: NotFound when libvirt knows none.
Result<DomainPtr> LookUpDomain(virConnectPtr conn, const std::string& uuid);

// The domain's state (virDomainGetState): paused for an I/O error is
// kIoError.
Result<RunState> DomainState(virDomainPtr dom);

// The domain's XML (VIR_DOMAIN_XML_* flags).
Result<std::string> DomainXmlDesc(virDomainPtr dom, unsigned flags);

// --- Change tracking (checkpoints) ---
// The names of the domain's checkpoints in vmgroup's namespace
// (IsOwnCheckpoint): another tool's are never listed.
Result<std::vector<std::string>> OwnCheckpoints(virDomainPtr dom);

}  // namespace vmgroup::hypervisor::libvirt
