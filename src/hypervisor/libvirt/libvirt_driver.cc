#include "hypervisor/libvirt/libvirt_driver.h"

#include <algorithm>
#include <mutex>

#include "hypervisor/libvirt/domain_xml.h"
#include "hypervisor/libvirt/frozen_serving.h"
#include "hypervisor/libvirt/libvirt_connection.h"
#include "hypervisor/libvirt/libvirt_guard.h"
#include "hypervisor/libvirt/libvirt_vm.h"
#include "storage/qemu_img.h"

namespace vmgroup::hypervisor::libvirt {

struct LibvirtDriver::State {
  Env* env;
  std::string uri;
  std::mutex mu;
  std::unique_ptr<LibvirtConnection> conn;  // guarded by mu
  std::function<void()> changed;            // guarded by mu

  // The connection, opened again if libvirt closed it (the daemon
  // restarted, the network went away). REQUIRES: mu held.
  Result<virConnectPtr> Connection() {
    if (!conn || !conn->alive()) {
      conn.reset();
      VMG_ASSIGN_OR_RETURN(conn, LibvirtConnection::Open(uri));
      if (changed) VMG_RETURN_IF_ERROR(conn->Watch(changed));
    }
    return conn->get();
  }
};

namespace {

// One domain as List shows it: its live definition while it runs.
Result<DomainInfo> Describe(virDomainPtr dom) {
  const int active = virDomainIsActive(dom);
  if (active < 0) return LastError(std::string("domain ") + virDomainGetName(dom));
  VMG_ASSIGN_OR_RETURN(auto xml, DomainXmlDesc(dom, active ? 0 : VIR_DOMAIN_XML_INACTIVE));
  VMG_ASSIGN_OR_RETURN(auto parsed, ParseDomainXml(xml));
  VMG_ASSIGN_OR_RETURN(parsed.info.state, DomainState(dom));
  return parsed.info;
}

// Redefines `dom` with its snapshotted disks on `images` (no <backingStore>
// kept) unless its definition has them already, without any <backingStore>.
Status RedefineDisks(virConnectPtr conn, virDomainPtr dom, const std::vector<std::string>& images) {
  VMG_ASSIGN_OR_RETURN(auto xml,
                       DomainXmlDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE));
  VMG_ASSIGN_OR_RETURN(auto parsed, ParseDomainXml(xml));
  const bool chains = std::any_of(parsed.all_disks.begin(), parsed.all_disks.end(),
                                  [](const DomainDisk& d) { return !d.backing.empty(); });
  if (parsed.info.disks == images && !chains) return Status::Ok();
  VMG_ASSIGN_OR_RETURN(auto rewritten, RewriteDisks(xml, images));
  virDomainPtr defined = virDomainDefineXML(conn, rewritten.c_str());
  if (!defined) return LastError("domain " + parsed.info.name + ": redefining its disks");
  virDomainFree(defined);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<LibvirtDriver>> LibvirtDriver::Connect(Env* env, const std::string& uri) {
  auto state = std::make_unique<State>();
  state->env = env;
  state->uri = uri;
  VMG_ASSIGN_OR_RETURN(state->conn, LibvirtConnection::Open(uri));
  return std::unique_ptr<LibvirtDriver>(new LibvirtDriver(std::move(state)));
}

LibvirtDriver::LibvirtDriver(std::unique_ptr<State> state) : state_(std::move(state)) {}
LibvirtDriver::~LibvirtDriver() = default;

const std::string& LibvirtDriver::uri() const { return state_->uri; }

Result<std::vector<DomainInfo>> LibvirtDriver::List() {
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(conn, &doms, 0);
  if (n < 0)
    return Status::Unavailable(LastError("libvirt " + state_->uri + ": domains").ToString());
  std::vector<DomainInfo> out;
  Status error;
  for (int i = 0; i < n; ++i) {
    DomainPtr dom(doms[i]);
    auto info = Describe(dom.get());
    if (info.ok()) {
      out.push_back(std::move(*info));
    } else if (info.status().code() != Code::kNotFound && error.ok()) {
      error = info.status();  // a domain undefined meanwhile is simply gone
    }
  }
  free(doms);  // NOLINT: libvirt's allocation
  if (!error.ok()) return error;
  return out;
}

void LibvirtDriver::Watch(std::function<void()> changed) {
  std::lock_guard lock(state_->mu);
  state_->changed = std::move(changed);
  // On failure the next List reconnects and watches again.
  if (state_->conn) (void)state_->conn->Watch(state_->changed);
}

Result<std::unique_ptr<Vm>> LibvirtDriver::Start(const VmSpec& spec,
                                                 const std::function<Status(int pid)>& admit) {
  (void)admit;  // QEMU is libvirtd's process, not ours (driver.h)
  {
    std::lock_guard lock(state_->mu);
    VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
    VMG_ASSIGN_OR_RETURN(auto dom, LookUpDomain(conn, spec.uuid));
    const std::string name = virDomainGetName(dom.get());
    if (virDomainIsActive(dom.get()) == 1) {
      return Status::InvalidState("domain " + name + " is running already");
    }
    if (!spec.disks.empty()) VMG_RETURN_IF_ERROR(RedefineDisks(conn, dom.get(), spec.disks));
    if (virDomainCreateWithFlags(dom.get(), spec.paused ? VIR_DOMAIN_START_PAUSED : 0) < 0) {
      return Status::Unavailable(LastError("starting domain " + name).ToString());
    }
    VMG_RETURN_IF_ERROR(state_->env->Hit(kFaultStarted, name));
  }
  VMG_ASSIGN_OR_RETURN(auto vm, LibvirtVm::Open(state_->env, state_->uri, spec));
  return std::unique_ptr<Vm>(std::move(vm));
}

Status LibvirtDriver::DefineDisks(const VmSpec& spec) {
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  VMG_ASSIGN_OR_RETURN(auto dom, LookUpDomain(conn, spec.uuid));
  if (virDomainIsActive(dom.get()) == 1) {
    return Status::InvalidState(std::string("domain ") + virDomainGetName(dom.get()) +
                                " is running: its disks are redefined only while it is shut off");
  }
  return RedefineDisks(conn, dom.get(), spec.disks);
}

Result<std::unique_ptr<Vm>> LibvirtDriver::Attach(const VmSpec& spec, int pid) {
  (void)pid;  // 0: libvirt finds the domain by its UUID
  VMG_ASSIGN_OR_RETURN(auto vm, LibvirtVm::Open(state_->env, state_->uri, spec));
  return std::unique_ptr<Vm>(std::move(vm));
}

Result<std::vector<ServedExport>> LibvirtDriver::ServeImages(
    const VmSpec& spec, const NbdListen& at, const std::vector<ServedImage>& images) {
  return ServeFrozen(state_->env, spec.run_dir, spec.uuid, spec.name, at, images);
}

Status LibvirtDriver::StopServing(const VmSpec& spec, const std::string& socket) {
  (void)spec;
  return StopServingFrozen(state_->env, socket);
}

namespace {

// The UUIDs of `vms`; InvalidArgument for a VM that is not a domain.
Result<std::vector<std::string>> DomainUuids(const std::vector<std::shared_ptr<Vm>>& vms) {
  std::vector<std::string> uuids;
  for (const auto& vm : vms) {
    const auto* domain = dynamic_cast<const LibvirtVm*>(vm.get());
    if (!domain) return Status::InvalidArgument("a VM to guard is not a libvirt domain");
    uuids.push_back(domain->uuid());
  }
  return uuids;
}

}  // namespace

Result<std::unique_ptr<ThawGuard>> LibvirtDriver::GuardThaw(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration within) {
  VMG_ASSIGN_OR_RETURN(auto uuids, DomainUuids(vms));
  VMG_ASSIGN_OR_RETURN(auto guard, StartLibvirtGuard(state_->uri, uuids, VirshAct::kThaw, within));
  return std::unique_ptr<ThawGuard>(std::move(guard));
}

Result<std::unique_ptr<ResumeGuard>> LibvirtDriver::GuardResume(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration within) {
  VMG_ASSIGN_OR_RETURN(auto uuids, DomainUuids(vms));
  VMG_ASSIGN_OR_RETURN(auto guard,
                       StartLibvirtGuard(state_->uri, uuids, VirshAct::kResume, within));
  return std::unique_ptr<ResumeGuard>(std::move(guard));
}

}  // namespace vmgroup::hypervisor::libvirt

// --- Export and restore (issue 15) ---

namespace vmgroup::hypervisor::libvirt {
namespace {

// AlreadyExists when libvirt at `conn` knows a domain of UUID `uuid` or
// named `name`.
Status CheckFree(virConnectPtr conn, const std::string& uuid, const std::string& name) {
  auto by_uuid = LookUpDomain(conn, uuid);
  if (by_uuid.ok()) {
    return Status::AlreadyExists(std::string("libvirt has a domain of UUID ") + uuid + " (" +
                                 virDomainGetName(by_uuid->get()) +
                                 "); undefine it first or restore as new");
  }
  if (by_uuid.status().code() != Code::kNotFound) return by_uuid.status();
  if (virDomainPtr d = virDomainLookupByName(conn, name.c_str())) {
    virDomainFree(d);
    return Status::AlreadyExists("libvirt has a domain named " + name +
                                 "; undefine or rename it first, or restore as new");
  }
  if (Status s = LastError("domain " + name); s.code() != Code::kNotFound) return s;
  return Status::Ok();
}

}  // namespace

Result<ExportedDefinition> LibvirtDriver::ExportDefinition(const std::string& uuid) {
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  VMG_ASSIGN_OR_RETURN(auto dom, LookUpDomain(conn, uuid));
  VMG_ASSIGN_OR_RETURN(auto xml, DomainXmlDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE));
  return BootFilesOf(xml);
}

Result<std::string> LibvirtDriver::PrepareRestore(const RestoredDefinition& r) {
  VMG_ASSIGN_OR_RETURN(auto sanitized, SanitizeRestored(r));
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  VMG_RETURN_IF_ERROR(CheckFree(conn, r.uuid, r.name));
  return sanitized;
}

Result<DomainInfo> LibvirtDriver::DefineRestored(const std::string& definition) {
  VMG_ASSIGN_OR_RETURN(auto parsed, ParseDomainXml(definition));
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  VMG_RETURN_IF_ERROR(CheckFree(conn, parsed.info.uuid, parsed.info.name));
  DomainPtr dom(virDomainDefineXML(conn, definition.c_str()));
  if (!dom) return LastError("defining domain " + parsed.info.name);
  return Describe(dom.get());
}

Status LibvirtDriver::UndefineRestored(const std::string& uuid) {
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  auto dom = LookUpDomain(conn, uuid);
  if (dom.status().code() == Code::kNotFound) return Status::Ok();
  VMG_RETURN_IF_ERROR(dom.status());
  const std::string name = virDomainGetName(dom->get());
  if (virDomainIsActive(dom->get()) == 1) {
    return Status::InvalidState("domain " + name +
                                " runs; a restore takes back only the shut-off domains it defined");
  }
  if (virDomainUndefineFlags(dom->get(), VIR_DOMAIN_UNDEFINE_NVRAM) < 0) {
    return LastError("undefining domain " + name);
  }
  return Status::Ok();
}

}  // namespace vmgroup::hypervisor::libvirt

// --- Change tracking of shut-off domains ---
namespace vmgroup::hypervisor::libvirt {
namespace {

// The domain `uuid`, shut off: InvalidState while it runs.
Result<DomainPtr> ShutOffDomain(virConnectPtr conn, const std::string& uuid) {
  VMG_ASSIGN_OR_RETURN(auto dom, LookUpDomain(conn, uuid));
  if (virDomainIsActive(dom.get()) == 1) {
    return Status::InvalidState(std::string("domain ") + virDomainGetName(dom.get()) +
                                " is running: its checkpoints are its running Vm's");
  }
  return dom;
}

}  // namespace

Result<std::vector<std::string>> LibvirtDriver::Trackings(const VmSpec& spec) {
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  VMG_ASSIGN_OR_RETURN(auto dom, ShutOffDomain(conn, spec.uuid));
  return OwnCheckpoints(dom.get());
}

Status LibvirtDriver::DropTracking(const VmSpec& spec, const std::string& name) {
  if (!IsOwnCheckpoint(name)) {
    return Status::InvalidArgument("checkpoint " + name + " is not vmgroup's: left alone");
  }
  std::lock_guard lock(state_->mu);
  VMG_ASSIGN_OR_RETURN(virConnectPtr conn, state_->Connection());
  VMG_ASSIGN_OR_RETURN(auto dom, ShutOffDomain(conn, spec.uuid));
  virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom.get(), name.c_str(), 0);
  if (!cp) return Status::Ok();
  // The bitmaps first: if this stops half-way, the checkpoint still names
  // what is left, and the next sweep goes on.
  storage::QemuImg img(state_->env);
  Status s;
  for (const auto& disk : spec.disks) {
    auto chain = img.Chain(disk);
    if (!chain.ok()) {
      s = chain.status();
      break;
    }
    for (const auto& image : *chain) {
      if (std::find(image.bitmaps.begin(), image.bitmaps.end(), name) == image.bitmaps.end()) {
        continue;
      }
      auto r = state_->env->Run({"qemu-img", "bitmap", "--remove", image.filename, name});
      if (!r.ok()) s = r.status();
      if (r.ok() && r->exit_code != 0) s = Status::Failed("qemu-img bitmap --remove: " + r->err);
      if (!s.ok()) break;
    }
    if (!s.ok()) break;
  }
  if (s.ok() && virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) < 0) {
    s = LastError("deleting checkpoint " + name);
  }
  virDomainCheckpointFree(cp);
  return s.Annotate("domain " + spec.uuid + ": checkpoint " + name);
}

}  // namespace vmgroup::hypervisor::libvirt
