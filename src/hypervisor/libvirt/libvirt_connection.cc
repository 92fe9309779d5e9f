#include "hypervisor/libvirt/libvirt_connection.h"

#include <libvirt/virterror.h>

#include <cstdlib>
#include <thread>

#include "hypervisor/libvirt/domain_xml.h"

namespace vmgroup::hypervisor::libvirt {
namespace {

// Keepalive: a probe every 5 s, the connection closed after 3 unanswered.
constexpr int kKeepAliveInterval = 5;
constexpr unsigned kKeepAliveCount = 3;

void IgnoreError(void*, virErrorPtr) {}

// Once per process: libvirt's errors are returned, not printed, and its
// default event loop runs on a thread that lives as long as the process
// (libvirt offers no way to stop it cleanly once connections use it).
Status InitOnce() {
  static const Status status = [] {
    if (virInitialize() < 0) return LastError("libvirt initialisation");
    virSetErrorFunc(nullptr, IgnoreError);
    if (virEventRegisterDefaultImpl() < 0) return LastError("libvirt event loop");
    std::thread([] {
      for (;;) {
        // A real sleep, not Env's: this thread serves every connection of
        // the process and outlives them all, so no one Env is its own; the
        // pause only keeps a failing loop from spinning.
        if (virEventRunDefaultImpl() < 0) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }).detach();
    return Status::Ok();
  }();
  return status;
}

int OnLifecycle(virConnectPtr, virDomainPtr, int, int, void* opaque) {
  static_cast<LibvirtConnection*>(opaque)->Notify();
  return 0;
}

void OnClose(virConnectPtr, int, void* opaque) {
  static_cast<LibvirtConnection*>(opaque)->Notify();
}

}  // namespace

Status LastError(const std::string& what) {
  const virError* e = virGetLastError();
  const std::string message =
      what + ": " + (e && e->message ? e->message : "unknown libvirt error");
  switch (e ? e->code : VIR_ERR_INTERNAL_ERROR) {
    case VIR_ERR_NO_DOMAIN:
      return Status::NotFound(message);
    case VIR_ERR_OPERATION_INVALID:
      return Status::InvalidState(message);
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
    case VIR_ERR_OPERATION_UNSUPPORTED:
      return Status::NotSupported(message);
    case VIR_ERR_OPERATION_TIMEOUT:
      return Status::Timeout(message);
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_RPC:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_AGENT_UNRESPONSIVE:
    case VIR_ERR_AGENT_UNSYNCED:
      return Status::Unavailable(message);
    default:
      return Status::Failed(message);
  }
}

Result<std::unique_ptr<LibvirtConnection>> LibvirtConnection::Open(const std::string& uri) {
  const Status init = InitOnce();
  if (!init.ok()) return Status::Unavailable(init.ToString());
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (!conn) return Status::Unavailable(LastError("libvirt " + uri).ToString());
  // Remote connections only; a local driver has none (-1: nothing to do).
  (void)virConnectSetKeepAlive(conn, kKeepAliveInterval, kKeepAliveCount);
  auto c = std::unique_ptr<LibvirtConnection>(new LibvirtConnection(uri, conn));
  if (virConnectRegisterCloseCallback(conn, OnClose, c.get(), nullptr) < 0) {
    return LastError("libvirt " + uri + ": close callback");
  }
  return c;
}

LibvirtConnection::~LibvirtConnection() {
  if (lifecycle_callback_ >= 0)
    (void)virConnectDomainEventDeregisterAny(conn_, lifecycle_callback_);
  (void)virConnectUnregisterCloseCallback(conn_, OnClose);
  {
    std::lock_guard lock(mu_);
    changed_ = nullptr;
  }
  virConnectClose(conn_);
}

Status LibvirtConnection::Watch(std::function<void()> changed) {
  {
    std::lock_guard lock(mu_);
    changed_ = std::move(changed);
  }
  if (lifecycle_callback_ >= 0) return Status::Ok();
  lifecycle_callback_ =
      virConnectDomainEventRegisterAny(conn_, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                       VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), this, nullptr);
  if (lifecycle_callback_ < 0) return LastError("libvirt " + uri_ + ": domain events");
  return Status::Ok();
}

void LibvirtConnection::Notify() {
  std::function<void()> changed;
  {
    std::lock_guard lock(mu_);
    changed = changed_;
  }
  // Outside mu_: the callback may list again, and so close this connection.
  if (changed) changed();
}

Result<DomainPtr> LookUpDomain(virConnectPtr conn, const std::string& uuid) {
  virDomainPtr d = virDomainLookupByUUIDString(conn, uuid.c_str());
  if (!d) return LastError("domain " + uuid);
  return DomainPtr(d);
}

Result<RunState> DomainState(virDomainPtr dom) {
  int state = 0, reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) < 0) {
    return LastError(std::string("domain ") + virDomainGetName(dom) + ": state");
  }
  switch (state) {
    case VIR_DOMAIN_RUNNING:
      return RunState::kRunning;
    case VIR_DOMAIN_PAUSED:
      return reason == VIR_DOMAIN_PAUSED_IOERROR ? RunState::kIoError : RunState::kPaused;
    case VIR_DOMAIN_SHUTOFF:
      return RunState::kShutoff;
    default:
      return RunState::kOther;
  }
}

Result<std::string> DomainXmlDesc(virDomainPtr dom, unsigned flags) {
  char* xml = virDomainGetXMLDesc(dom, flags);
  if (!xml) return LastError(std::string("domain ") + virDomainGetName(dom) + ": XML");
  std::string out(xml);
  free(xml);  // NOLINT: libvirt's allocation
  return out;
}

// --- Change tracking (checkpoints) ---
Result<std::vector<std::string>> OwnCheckpoints(virDomainPtr dom) {
  virDomainCheckpointPtr* list = nullptr;
  const int n = virDomainListAllCheckpoints(dom, &list, 0);
  if (n < 0) return LastError(std::string("domain ") + virDomainGetName(dom) + ": checkpoints");
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    const char* name = virDomainCheckpointGetName(list[i]);
    if (name && IsOwnCheckpoint(name)) names.emplace_back(name);
    virDomainCheckpointFree(list[i]);
  }
  free(list);  // NOLINT: libvirt's allocation
  return names;
}

}  // namespace vmgroup::hypervisor::libvirt
