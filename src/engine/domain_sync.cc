#include "engine/domain_sync.h"

#include <set>

#include "base/log.h"

namespace vmgroup::engine {
namespace {

// Events can be lost (a connection that dropped and came back): a listing
// this often catches what they missed.
constexpr auto kResyncEvery = std::chrono::minutes(1);

// What vmgroup records for a domain in libvirt state `state`. A domain
// paused on an I/O error counts as running, as vmgroupd's own VMs do (the
// listing shows why it is held); a state libvirt cannot name keeps what
// was recorded.
catalog::Power PowerOf(hypervisor::RunState state, catalog::Power recorded) {
  switch (state) {
    case hypervisor::RunState::kRunning:
    case hypervisor::RunState::kIoError:
      return catalog::Power::kRunning;
    case hypervisor::RunState::kPaused:
      return catalog::Power::kPaused;
    case hypervisor::RunState::kShutoff:
      return catalog::Power::kOff;
    case hypervisor::RunState::kOther:
      break;
  }
  return recorded;
}

}  // namespace

catalog::VmRecord RecordOfDomain(const hypervisor::DomainInfo& d, const std::string& uri,
                                 const catalog::VmRecord* was) {
  catalog::VmRecord now = was ? *was : catalog::VmRecord{};
  now.id = d.uuid;
  now.name = d.name;
  now.config.memory_mib = d.memory_mib;
  now.config.vcpus = d.vcpus;
  now.disks = d.disks;
  now.power = PowerOf(d.state, was ? was->power : catalog::Power::kOff);
  now.pid = 0;
  now.libvirt_uri = uri;
  return now;
}

DomainSync::~DomainSync() {
  for (const auto& uri : vms_->ConnectionUris()) vms_->Connection(uri)->Watch({});
  snapshots_->OnOperationEnd({});
  {
    std::lock_guard lock(signal_->mu);
    signal_->stop = true;
  }
  signal_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status DomainSync::Sync(const std::string& uri) {
  hypervisor::Driver* driver = vms_->Connection(uri);
  if (!driver) return Status::NotFound("no libvirt connection to " + uri + " is open");
  // Before the listing: a domain whose operation ends after this point was
  // listed as the operation left it for a moment (paused mid-cut); its
  // record waits for the listing the operation's end leads to.
  const uint64_t since = snapshots_->ClaimsEnded();
  VMG_ASSIGN_OR_RETURN(auto domains, driver->List());
  VMG_ASSIGN_OR_RETURN(auto recorded, catalog_->ListVms());
  std::map<std::string, catalog::VmRecord> by_id;
  for (auto& vm : recorded) by_id.emplace(vm.id, std::move(vm));

  Status first;
  auto keep = [&first](const Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  std::set<std::string> listed;
  for (const hypervisor::DomainInfo& d : domains) {
    listed.insert(d.uuid);
    auto it = by_id.find(d.uuid);
    const catalog::VmRecord* was = it == by_id.end() ? nullptr : &it->second;
    if (was && was->libvirt_uri != uri) {
      Log(LogLevel::kWarning,
          "libvirt domain " + d.name + " on " + uri + " has the UUID of VM " + was->name + " (" +
              (was->libvirt_uri.empty() ? std::string("vmgroupd's own") : was->libvirt_uri) +
              "): ignored");
      continue;
    }
    vms_->SetUnsupported(d.uuid, d.unsupported);
    const catalog::VmRecord now = RecordOfDomain(d, uri, was);
    snapshots_->RunUnclaimed(d.uuid, since, [&] {
      Status s = was ? catalog_->UpdateDomain(now) : catalog_->InsertVm(now);
      if (!s.ok()) return keep(s.Annotate("libvirt domain " + d.name));
      if (now.power == catalog::Power::kOff) return vms_->Drop(d.uuid);
      if (vms_->Live(d.uuid)) return;
      auto live = driver->Attach(vms_->SpecOf(now), 0);
      if (live.ok()) return vms_->Adopt(d.uuid, std::move(live).value());
      // Stopped since it was listed: the event that says so syncs again.
      if (live.status().code() != Code::kUnavailable) {
        keep(live.status().Annotate("libvirt domain " + d.name));
      }
    });
  }
  for (const auto& [recorded_id, vm] : by_id) {
    if (vm.libvirt_uri != uri || listed.count(recorded_id)) continue;
    // A named copy: clang 14 does not let a lambda capture a structured binding.
    const std::string& id = recorded_id;
    snapshots_->RunUnclaimed(id, since, [&] {
      Status s = vms_->ForgetDomain(id);
      if (s.code() == Code::kInvalidState) {
        Log(LogLevel::kWarning, s.message());
      } else {
        keep(s);
      }
    });
  }
  return first;
}

void DomainSync::SyncAll() {
  for (const auto& uri : vms_->ConnectionUris()) {
    if (Status s = Sync(uri); !s.ok()) {
      Log(LogLevel::kWarning, "following the domains of libvirt at " + uri + ": " + s.ToString());
    }
  }
}

void DomainSync::Follow() {
  const auto resync = [signal = signal_] {
    {
      std::lock_guard lock(signal->mu);
      signal->changed = true;
    }
    signal->wake.notify_all();
  };
  const auto uris = vms_->ConnectionUris();
  for (const auto& uri : uris) vms_->Connection(uri)->Watch(resync);
  // The domains an operation held were left alone meanwhile, and their
  // events with them: a listing once it ends records what it did.
  if (!uris.empty()) snapshots_->OnOperationEnd([resync](const auto&) { resync(); });
  thread_ = std::thread([this] {
    Signal& s = *signal_;
    std::unique_lock lock(s.mu);
    while (!s.stop) {
      s.wake.wait_for(lock, kResyncEvery, [&s] { return s.stop || s.changed; });
      if (s.stop) break;
      s.changed = false;
      lock.unlock();
      SyncAll();
      lock.lock();
    }
  });
}

}  // namespace vmgroup::engine
