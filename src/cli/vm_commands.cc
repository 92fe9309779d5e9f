// vmgroup vm create | list | show | start | stop | pause | resume | delete
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {
namespace {

int Usage() {
  std::cerr
      << "usage: vmgroup vm create NAME --memory MiB --disk SIZE|PATH [--disk ...] [--cpus N]\n"
         "                          [--kernel K --initrd I --append A] [--start]\n"
         "       vmgroup vm list | show NAME | start NAME | stop NAME | pause NAME |\n"
         "                  resume NAME | delete NAME\n";
  return kExitUsage;
}

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  return ::getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
}

int Create(Context& ctx, const CommandLine& c) {
  if (c.positional().size() != 1 || !c.Has("disk")) return Usage();
  NewVm vm;
  vm.name = c.positional()[0];
  try {
    vm.memory_mib = std::stoll(c.Get("memory", "128"));
    vm.vcpus = std::stoll(c.Get("cpus", "1"));
  } catch (...) {
    return ReportError(Status::InvalidArgument("--memory and --cpus take numbers"));
  }
  for (const auto& d : c.All("disk")) {
    // A path names an existing image; anything that reads as a size is a new disk.
    auto size = ParseSize(d);
    const bool is_path = d.find('/') != std::string::npos || d.ends_with(".qcow2") || !size.ok();
    vm.disk_paths.push_back(is_path ? Absolute(d) : "");
    vm.disk_new_bytes.push_back(is_path ? 0 : *size);
  }
  vm.kernel = Absolute(c.Get("kernel"));
  vm.initrd = Absolute(c.Get("initrd"));
  vm.append = c.Get("append");
  auto r = ctx.api->CreateVm(vm);
  if (int rc = Settle(ctx, r, "creating VM " + vm.name, true); rc != kExitOk) return rc;
  std::string id;
  if (const cim::Param* p = r->response.Out("ResultingSystem"); p && !p->value.refs.empty()) {
    if (const cim::KeyBinding* k = p->value.refs[0].Key("Name")) id = k->value;
  }
  if (c.Has("start")) {
    if (int rc = Settle(ctx, ctx.api->ChangeVmState(id, 2), "starting VM " + vm.name, true);
        rc != kExitOk) {
      return rc;
    }
  }
  if (ctx.json) {
    PrintJson({{"id", id}, {"name", vm.name}});
  } else {
    std::cout << id << "\n";
  }
  return kExitOk;
}

int List(Context& ctx) {
  auto vms = ctx.api->ListVms();
  if (!vms.ok()) return ReportError(vms.status());
  if (ctx.json) {
    PrintJsonList(*vms);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "STATE", "MEMORY", "CPUS", "DISKS"}};
  for (const auto& v : *vms) {
    rows.push_back({v.name, v.id, v.state, std::to_string(v.memory_mib) + " MiB",
                    std::to_string(v.vcpus), std::to_string(v.disks.size())});
  }
  PrintTable(std::cout, rows);
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
      {"Memory:", std::to_string(v.memory_mib) + " MiB"},
      {"CPUs:", std::to_string(v.vcpus)}};
  for (size_t i = 0; i < v.disks.size(); ++i) {
    rows.push_back({"Disk " + std::to_string(i) + ":", v.disks[i]});
  }
  if (!v.kernel.empty()) rows.push_back({"Kernel:", v.kernel});
  if (!v.initrd.empty()) rows.push_back({"Initrd:", v.initrd});
  if (!v.append.empty()) rows.push_back({"Append:", v.append});
  PrintTable(std::cout, rows);
  return kExitOk;
}

}  // namespace

int RunVm(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return Usage();
  const std::string verb = words[0];
  auto c = CommandLine::Parse({words.begin() + 1, words.end()},
                              {"memory", "cpus", "disk", "kernel", "initrd", "append"}, {"start"});
  if (!c.ok()) return ReportError(c.status());
  if (verb == "create") return Create(ctx, *c);
  if (verb == "list") return c->positional().empty() ? List(ctx) : Usage();
  if (c->positional().size() != 1) return Usage();
  auto vm = ctx.api->FindVm(c->positional()[0]);
  if (!vm.ok()) return ReportError(vm.status());
  if (verb == "show") return Show(ctx, *vm);
  if (verb == "delete")
    return Settle(ctx, ctx.api->DeleteVm(vm->id), "deleting VM " + vm->name, true);
  const std::map<std::string, int> states = {
      {"start", 2}, {"resume", 2}, {"stop", 3}, {"pause", 9}};
  auto it = states.find(verb);
  if (it == states.end()) return Usage();
  if (verb == "start" && vm->state == "paused") {
    return ReportError(Status::InvalidState("VM " + vm->name + " is paused; use resume"));
  }
  if (verb == "resume" && vm->state != "paused") {
    return ReportError(
        Status::InvalidState("VM " + vm->name + " is " + vm->state + ", not paused"));
  }
  return Settle(ctx, ctx.api->ChangeVmState(vm->id, it->second), verb + " VM " + vm->name, true);
}

}  // namespace vmgroup::cli
