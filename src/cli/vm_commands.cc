// vmgroup vm create | list | show | start | stop | turn-off | pause | resume | delete
#include <iostream>
#include <limits>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/classes.h"

namespace vmgroup::cli {
namespace {

int Usage() { return UsageError("vm"); }

// How long `vm stop` gives a guest to shut down by default, and at most (a day).
constexpr int64_t kStopTimeoutSeconds = 60, kMaxStopTimeoutSeconds = 86400;

// The sizes `--disk` takes for a new disk; vmgroupd checks them again, as
// it does memory and processors (docs/api.md).
constexpr uint64_t kMinDiskBytes = uint64_t{1} << 20, kMaxDiskBytes = uint64_t{64} << 40;

// The whole number `flag` gives (`fallback` when left out); whether a VM
// may have it is vmgroupd's to say.
Result<int64_t> WholeNumber(const CommandLine& c, const std::string& flag,
                            const std::string& fallback, const std::string& unit) {
  const std::string text = c.Get(flag, fallback);
  auto n = ParseInt(flag, text, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max());
  if (!n.ok()) {
    return Status::InvalidArgument("--" + flag + " takes a whole number" + unit + ", not '" +
                                   Printable(text) + "'");
  }
  return n;
}

int Create(Context& ctx, const CommandLine& c) {
  if (c.positional().size() != 1 || !c.Has("disk")) return Usage();
  NewVm vm;
  vm.name = c.positional()[0];
  auto memory = WholeNumber(c, "memory", "128", " of MiB");
  if (!memory.ok()) return ReportError(memory.status());
  auto cpus = WholeNumber(c, "cpus", "1", "");
  if (!cpus.ok()) return ReportError(cpus.status());
  vm.config.memory_mib = *memory;
  vm.config.vcpus = *cpus;
  vm.config.hugepages = c.Has("hugepages");
  for (const auto& d : c.All("disk")) {
    // An absolute path names an existing image; anything else must be a size.
    if (d.starts_with("/")) {
      vm.disk_paths.push_back(d);
      vm.disk_new_bytes.push_back(0);
      continue;
    }
    auto size = ParseSize("--disk", d, kMinDiskBytes, kMaxDiskBytes);
    if (!size.ok()) {
      return ReportError(Status::InvalidArgument(
          "--disk takes the size of a new disk (like 16M or 20G; K, M, G or T, upper case, "
          "from 1M to 64T) or the absolute path of an existing qcow2 image, not '" +
          Printable(d) + "'"));
    }
    vm.disk_paths.push_back("");
    vm.disk_new_bytes.push_back(static_cast<int64_t>(*size));
  }
  for (auto [flag, field] :
       {std::pair{"kernel", &vm.config.kernel}, std::pair{"initrd", &vm.config.initrd}}) {
    if (!c.Has(flag)) continue;
    auto path = AbsolutePath(std::string("--") + flag, c.Get(flag));
    if (!path.ok()) return ReportError(path.status());
    *field = *path;
  }
  vm.config.append = c.Get("append");
  auto r = ctx.api->CreateVm(vm);
  if (int rc = Settle(ctx, r, "creating VM " + vm.name, true); rc != kExitOk) return rc;
  std::string id;
  using Define = schema::VirtualSystemManagementService::DefineSystem;
  if (const cim::Param* p = r->response.Out(Define::kResultingSystem);
      p && !p->value.refs.empty()) {
    if (const cim::KeyBinding* k = p->value.refs[0].Key(schema::ComputerSystem::kName)) {
      id = k->value;
    }
  }
  if (c.Has("start")) {
    if (int rc = Settle(ctx, ctx.api->ChangeVmState(id, schema::RequestedState::kRunning),
                        "starting VM " + vm.name, true);
        rc != kExitOk) {
      return rc;
    }
  }
  if (ctx.json) {
    PrintJson({{"id", id}, {"name", vm.name}});
  } else {
    std::cout << Printable(id) << "\n";
  }
  return kExitOk;
}

// Where a VM lives, for people: "vmgroupd" for the VMs it runs itself, else
// "libvirt <uri>".
std::string WhereText(const VmInfo& v) {
  return v.libvirt_uri.empty() ? "vmgroupd" : "libvirt " + v.libvirt_uri;
}

int List(Context& ctx) {
  auto vms = ctx.api->ListVms();
  if (!vms.ok()) return ReportError(vms.status());
  if (ctx.json) {
    PrintJsonList(*vms);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ID", "STATE", "MEMORY", "CPUS", "DISKS", "WHERE"}};
  for (const auto& v : *vms) {
    rows.push_back({v.name, v.id, v.state, std::to_string(v.config.memory_mib) + " MiB",
                    std::to_string(v.config.vcpus), std::to_string(v.disks.size()), WhereText(v)});
  }
  PrintTable(std::cout, rows);
  // Why each VM QEMU paused on an I/O error, or an apply across hosts
  // holds off, is so, under the table.
  for (const auto& v : *vms) {
    if (v.reason.empty()) continue;
    std::cout << Printable(v.name)
              << (v.state == "io-error" ? ": paused by QEMU on an I/O error: " : ": ")
              << Printable(v.reason) << "\n";
  }
  return kExitOk;
}

int Show(Context& ctx, const VmInfo& v) {
  if (ctx.json) {
    PrintJson(ToJson(v));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"Name:", v.name},
      {"Id:", v.id},
      {"State:", v.state + (v.pid > 0 ? " (QEMU pid " + std::to_string(v.pid) + ")" : "")},
      {"Where:", WhereText(v)}};
  if (!v.reason.empty()) rows.push_back({"Reason:", v.reason});
  rows.push_back({"Memory:", std::to_string(v.config.memory_mib) + " MiB" +
                                 (v.config.hugepages ? " on 2 MiB huge pages" : "")});
  rows.push_back({"CPUs:", std::to_string(v.config.vcpus)});
  for (size_t i = 0; i < v.disks.size(); ++i) {
    rows.push_back({"Disk " + std::to_string(i) + ":", v.disks[i]});
  }
  if (!v.config.kernel.empty()) rows.push_back({"Kernel:", v.config.kernel});
  if (!v.config.initrd.empty()) rows.push_back({"Initrd:", v.config.initrd});
  if (!v.config.append.empty()) rows.push_back({"Append:", v.config.append});
  PrintTable(std::cout, rows);
  return kExitOk;
}

// The guest shuts down (its power button) within --timeout seconds, or the
// job fails and the VM runs on; with --force it is turned off then.
int Stop(Context& ctx, const CommandLine& c, const VmInfo& vm) {
  auto timeout = ParseInt("--timeout", c.Get("timeout", std::to_string(kStopTimeoutSeconds)), 1,
                          kMaxStopTimeoutSeconds);
  if (!timeout.ok()) return ReportError(timeout.status());
  return Settle(ctx, ctx.api->ShutDownVm(vm.id, *timeout, c.Has("force")), "stop VM " + vm.name,
                true);
}

}  // namespace

int RunVm(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return Usage();
  const std::string verb = words[0];
  auto c = CommandLine::Parse({words.begin() + 1, words.end()},
                              {"memory", "cpus", "disk", "kernel", "initrd", "append", "timeout"},
                              {"start", "force", "hugepages"});
  if (!c.ok()) return ReportError(c.status());
  if (verb == "create") return Create(ctx, *c);
  if (verb == "list") return c->positional().empty() ? List(ctx) : Usage();
  if (c->positional().size() != 1) return Usage();
  auto vm = ctx.api->FindVm(c->positional()[0]);
  if (!vm.ok()) return ReportError(vm.status());
  if (verb == "show") return Show(ctx, *vm);
  if (verb == "stop") return Stop(ctx, *c, *vm);
  if (verb == "delete")
    return Settle(ctx, ctx.api->DeleteVm(vm->id), "deleting VM " + vm->name, true);
  using Requested = schema::RequestedState;
  const std::map<std::string, int> states = {{"start", Requested::kRunning},
                                             {"resume", Requested::kRunning},
                                             {"turn-off", Requested::kOff},
                                             {"pause", Requested::kQuiesce}};
  auto it = states.find(verb);
  if (it == states.end()) return Usage();
  if (verb == "start" && vm->state == "paused") {
    return ReportError(Status::InvalidState("VM " + vm->name + " is paused; use resume"));
  }
  if (verb == "resume" && vm->state != "paused" && vm->state != "io-error") {
    return ReportError(
        Status::InvalidState("VM " + vm->name + " is " + vm->state + ", not paused"));
  }
  return Settle(ctx, ctx.api->ChangeVmState(vm->id, it->second), verb + " VM " + vm->name, true);
}

}  // namespace vmgroup::cli
