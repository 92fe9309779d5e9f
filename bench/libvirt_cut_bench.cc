// libvirt_cut_bench: the pause window of a group snapshot of N libvirt
// domains (firmware only, 64 MiB, two 16 MiB qcow2 disks each, QEMU under
// TCG) taken by vmgroup's libvirt driver, against the same cut scripted
// with libvirt's API, on the same domains in the same run, all in one
// private libvirtd (testing/private_libvirtd.h; needs root). Each round
// takes one group snapshot each way, in an order that rotates from round
// to round, each merged back (block commit) before the next, so that every
// snapshot meets the same one-image chains. The ways:
//   script    suspend all -> virDomainSnapshotCreateXML(DISK_ONLY|ATOMIC)
//             of each (libvirt makes the overlays inside the call) ->
//             resume all, one thread and one connection per domain per
//             phase: what operators script
//   reuse     the same with REUSE_EXT, the overlays made by qemu-img first
//   reuse-nm  the same with REUSE_EXT|NO_METADATA
//   vmgroup   hypervisor::libvirt::LibvirtDriver, as the engine cuts: the
//             overlays made by qemu-img and opened (Vm::OpenOverlays)
//             while the domains run, then engine::ExecuteCut
// After every snapshot the live XML of each domain must name the new
// overlays (libvirt's view stays right), or the run stops.
// window = first suspend -> last resume; total = overlays made -> last
// resume. Prints a table, the ratio vmgroup/script per N, then the JSON
// (also written to --json FILE). --debug-log FILE keeps libvirtd's debug
// log of its QEMU driver (monitor messages with their times, jobs), to
// see where the time goes; that logging slows libvirtd down.
//
//   sudo build/bench/libvirt_cut_bench [--sizes 1,4,16] [--rounds 7] [--json FILE]
//                                      [--debug-log FILE]
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/cut_executor.h"
#include "engine/snapshot_engine.h"
#include "hypervisor/libvirt/libvirt_driver.h"
#include "libvirt_side.h"
#include "report.h"
#include "stats.h"
#include "storage/qemu_img.h"
#include "testing/private_libvirtd.h"
#include "testing/temp_dir.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

struct Way {
  const char* name;
  const char* tag;            // names its overlays: <disk>.<tag><round>
  unsigned int script_flags;  // beyond DISK_ONLY|ATOMIC
  bool premade;               // overlays made by qemu-img before the pause
  bool vmgroup;
};
const Way kWays[] = {
    {"script", "s", 0, false, false},
    {"reuse", "r", VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT, true, false},
    {"reuse-nm", "m", VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT | VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA,
     true, false},
    {"vmgroup", "v", 0, true, true},
};
constexpr size_t kNumWays = std::size(kWays);

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// N running domains, reached both ways.
struct Group {
  std::vector<std::string> uuids;
  std::vector<ScriptDomain> script;                  // disks and tops kept here
  std::vector<std::shared_ptr<hypervisor::Vm>> vms;  // the driver's, by index
};

// The overlay of each disk of `d` for snapshot `tag`.
std::vector<std::string> OverlaysOf(const ScriptDomain& d, const std::string& tag) {
  std::vector<std::string> out;
  for (const auto& disk : d.disks) out.push_back(disk + "." + tag);
  return out;
}

Status Premake(storage::QemuImg& img, const Group& g, const std::string& tag) {
  for (const auto& d : g.script) {
    const auto overlays = OverlaysOf(d, tag);
    for (size_t k = 0; k < overlays.size(); ++k) {
      VMG_RETURN_IF_ERROR(img.CreateOverlay(d.tops[k], overlays[k]));
    }
  }
  return Status::Ok();
}

// One group snapshot as the engine cuts (overlays already made).
Status VmgroupRound(Group& g, const std::string& tag, Samples& out) {
  Env* env = Env::Default();
  std::vector<engine::CutMember> members;
  for (size_t i = 0; i < g.script.size(); ++i) {
    const ScriptDomain& d = g.script[i];
    const auto paths = OverlaysOf(d, tag);
    std::vector<hypervisor::Overlay> overlays;
    for (size_t k = 0; k < paths.size(); ++k) {
      overlays.push_back(
          {.disk = static_cast<int>(k), .path = paths[k], .tag = tag, .base = d.tops[k]});
    }
    VMG_RETURN_IF_ERROR(
        g.vms[i]->OpenOverlays(overlays, env->Now() + std::chrono::seconds(30)).Annotate(d.name));
    members.push_back({.name = d.name, .vm = g.vms[i], .pause = true, .overlays = overlays});
  }
  const engine::CutOutcome cut =
      engine::ExecuteCut(env, members, /*bitmap=*/"", engine::SnapshotOptions{}.pause_deadline);
  VMG_RETURN_IF_ERROR(cut.revert_status);
  VMG_RETURN_IF_ERROR(cut.status);
  int64_t max_pause = 0;
  for (const auto& t : cut.timings) max_pause = std::max(max_pause, t.pause_us);
  out.window_us.push_back(cut.window_us);
  out.max_pause_us.push_back(max_pause);
  out.total_us.push_back(cut.window_us);
  for (auto& d : g.script) d.tops = OverlaysOf(d, tag);
  return Status::Ok();
}

// libvirt's live XML names the overlays each domain was switched to.
Status CheckLibvirtView(hypervisor::libvirt::LibvirtDriver& driver, const Group& g) {
  VMG_ASSIGN_OR_RETURN(auto domains, driver.List());
  std::map<std::string, std::vector<std::string>> live;
  for (const auto& info : domains) live[info.uuid] = info.disks;
  for (size_t i = 0; i < g.uuids.size(); ++i) {
    if (live[g.uuids[i]] != g.script[i].tops) {
      std::string names;
      for (const auto& f : live[g.uuids[i]]) names += " " + f;
      return Status::Failed("libvirt's live XML of " + g.script[i].name + " names" + names +
                            ", not the overlays of the last snapshot");
    }
  }
  return Status::Ok();
}

// Merges each disk's overlay back into the domain's own image, as the
// driver undoes a switch (active block commit, then pivot; one thread per
// domain), and removes the overlays: every snapshot then meets one-image
// chains, whatever came before it.
Status Flatten(Group& g, const std::string& tag) {
  std::vector<Status> status(g.script.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < g.script.size(); ++i) {
    threads.emplace_back([&, i] {
      const ScriptDomain& d = g.script[i];
      std::vector<hypervisor::Overlay> overlays;
      for (size_t k = 0; k < d.disks.size(); ++k) {
        overlays.push_back(
            {.disk = static_cast<int>(k), .path = d.tops[k], .tag = tag, .base = d.disks[k]});
      }
      status[i] = g.vms[i]->RevertOverlays(overlays).Annotate("merging " + d.name);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : status) VMG_RETURN_IF_ERROR(s);
  for (auto& d : g.script) {
    for (const auto& top : d.tops) VMG_RETURN_IF_ERROR(Env::Default()->RemoveFile(top));
    d.tops = d.disks;
  }
  return Status::Ok();
}

// One snapshot of the group taken `way`, appended to `out`; then merged.
Status TakeOne(const Way& way, const std::string& tag, Group& g,
               hypervisor::libvirt::LibvirtDriver& driver, Samples& out) {
  storage::QemuImg img(Env::Default());
  const auto began = Clock::now();
  if (way.premade) VMG_RETURN_IF_ERROR(Premake(img, g, tag));
  VMG_RETURN_IF_ERROR(way.vmgroup ? VmgroupRound(g, tag, out)
                                  : ScriptRound(g.script, tag, way.script_flags, out));
  out.total_us.back() = Micros(Clock::now() - began);
  VMG_RETURN_IF_ERROR(CheckLibvirtView(driver, g).Annotate(std::string(way.name) + " " + tag));
  return Flatten(g, tag);
}

// Defines and starts n domains in `images`, and reaches them both ways.
Status MakeGroup(testing::PrivateLibvirtd& lv, hypervisor::libvirt::LibvirtDriver& driver, int n,
                 const std::string& images, Group& g) {
  storage::QemuImg img(Env::Default());
  VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(images));
  for (int i = 0; i < n; ++i) {
    testing::GuestDomain dom{.name = "cut" + std::to_string(n) + "-" + std::to_string(i),
                             .memory_mib = 64};
    for (int k = 0; k < 2; ++k) {
      dom.disks.push_back(images + "/" + dom.name + "-d" + std::to_string(k) + ".qcow2");
      VMG_RETURN_IF_ERROR(img.Create(dom.disks.back(), 16 << 20));
    }
    VMG_ASSIGN_OR_RETURN(std::string uuid, lv.Define(dom, /*start=*/true));
    g.uuids.push_back(uuid);
    g.script.push_back({.name = dom.name, .disks = dom.disks});
    VMG_ASSIGN_OR_RETURN(auto vm, driver.Attach({.uuid = uuid, .name = dom.name}, 0));
    g.vms.push_back(std::move(vm));
  }
  return ConnectEach(lv.uri(), g.script);
}

// Closes both ways in and destroys and undefines every domain of `g`.
void EndGroup(testing::PrivateLibvirtd& lv, Group& g) {
  Disconnect(g.script);
  g.vms.clear();
  for (const auto& d : g.script) {
    (void)lv.Virsh({"destroy", d.name});
    (void)lv.Virsh({"undefine", d.name, "--snapshots-metadata"});
  }
}

// Samples by way name, then by N.
using Results = std::map<std::string, std::map<int, Samples>>;

Status Measure(testing::PrivateLibvirtd& lv, const std::string& dir, const std::vector<int>& sizes,
               int rounds, Results& results) {
  VMG_ASSIGN_OR_RETURN(auto driver,
                       hypervisor::libvirt::LibvirtDriver::Connect(Env::Default(), lv.uri()));
  for (int n : sizes) {
    std::fprintf(stderr, "%d domains x 2 disks, %d rounds of %zu ways...\n", n, rounds, kNumWays);
    const std::string images = dir + "/img" + std::to_string(n);
    Group g;
    Status status = MakeGroup(lv, *driver, n, images, g);
    Samples warmup;
    for (int r = -1; r < rounds && status.ok(); ++r) {  // round -1 warms up
      for (size_t w = 0; w < kNumWays && status.ok(); ++w) {
        const Way& way = kWays[(w + static_cast<size_t>(r + 1)) % kNumWays];
        const std::string tag = way.tag + (r < 0 ? std::string("w") : std::to_string(r));
        status = TakeOne(way, tag, g, *driver, r < 0 ? warmup : results[way.name][n]);
      }
    }
    EndGroup(lv, g);
    std::error_code ec;
    std::filesystem::remove_all(images, ec);
    VMG_RETURN_IF_ERROR(status.Annotate(std::to_string(n) + " domains"));
  }
  return Status::Ok();
}

// Has libvirtd log its QEMU driver at debug level (monitor messages, jobs)
// to /var/log/libvirt/debug.log, to see where a window's time goes. The
// logging itself slows libvirtd down: measure without it.
Status TraceQemuDriver(testing::PrivateLibvirtd& lv) {
  VMG_RETURN_IF_ERROR(lv.VirtAdmin({"daemon-log-filters", "1:qemu 1:conf.domain_job"}).status());
  return lv
      .VirtAdmin({"daemon-log-outputs",
                  "1:file:/var/log/libvirt/debug.log 3:file:/var/log/libvirt/libvirtd.log"})
      .status();
}

int Usage() {
  std::fprintf(stderr,
               "usage: libvirt_cut_bench [--sizes 1,4,16] [--rounds N] [--json FILE] "
               "[--debug-log FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {1, 4, 16};
  int rounds = 7;
  std::string json_file, debug_log;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--sizes") {
      sizes = ParseList(next());
    } else if (arg == "--rounds") {
      rounds = std::stoi(next());
    } else if (arg == "--json") {
      json_file = next();
    } else if (arg == "--debug-log") {
      debug_log = next();
    } else {
      return Usage();
    }
  }
  if (sizes.empty() || rounds < 1) return Usage();
  if (::geteuid() != 0) {
    std::fprintf(stderr, "libvirt_cut_bench runs a private privileged libvirtd: run it as root\n");
    return 1;
  }

  Results results;
  Status status;
  {
    testing::TempDir dir;
    auto lv = testing::PrivateLibvirtd::Start(Env::Default(), dir / "lv");
    status = lv.ok() ? Status::Ok() : lv.status();
    if (status.ok() && !debug_log.empty()) status = TraceQemuDriver(**lv);
    if (status.ok()) status = Measure(**lv, dir.path(), sizes, rounds, results);
    if (lv.ok() && !debug_log.empty()) {
      std::error_code ec;
      std::filesystem::copy_file((*lv)->dir() + "/log/libvirt/debug.log", debug_log,
                                 std::filesystem::copy_options::overwrite_existing, ec);
    }
  }  // libvirtd and every QEMU it ran end here, then the images go
  if (!status.ok()) {
    std::fprintf(stderr, "libvirt_cut_bench failed: %s\n", status.ToString().c_str());
    return 1;
  }

  std::printf(
      "group snapshot of N libvirt domains x 2 disks, QEMU TCG, one private libvirtd, %d rounds "
      "each (ms)\n",
      rounds);
  std::printf("%s", kRowHeader);
  json report = {{"rounds", rounds},
                 {"accel", "tcg"},
                 {"ways", json::object()},
                 {"ratio_window_median", json::object()}};
  for (int n : sizes) {
    for (const Way& way : kWays) {
      PrintRow(way.name, n, results[way.name][n]);
      report["ways"][way.name][std::to_string(n)] = ToJson(results[way.name][n]);
    }
    const double ratio =
        Median(results["vmgroup"][n].window_us) / Median(results["script"][n].window_us);
    report["ratio_window_median"][std::to_string(n)] = ratio;
    std::printf("ratio    %3d | vmgroup window / script window = %.3f\n", n, ratio);
  }
  std::printf("targets:\n");
  if (results["vmgroup"].count(4)) {
    const double r = report["ratio_window_median"]["4"].get<double>();
    std::printf("  N=4  vmgroup window <= 1/2 of the script's: %.3f %s\n", r,
                r <= 0.5 ? "met" : "MISSED");
  }
  std::printf("%s\n", report.dump().c_str());
  if (!json_file.empty()) std::ofstream(json_file) << report.dump(2) << "\n";
  return 0;
}
