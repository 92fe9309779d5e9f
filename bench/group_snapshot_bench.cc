// group_snapshot_bench: the group pause window, the longest single-VM pause
// and the end-to-end time of a group snapshot, for groups of N firmware-only
// VMs with two qcow2 disks each (QEMU under TCG), several rounds per N; and
// in the same run the same measure for libvirt's API on identical VMs
// (suspend all -> disk-only atomic snapshot of each -> resume all), with the
// ratio. vmgroup is measured twice: disk-only snapshots (type 32768: the same
// work as libvirt's disk-only snapshot, the comparison that counts) and
// recovery snapshots (type 2: also a persistent dirty bitmap per disk, whose
// cost QEMU pays inside the pause when the old image goes read-only).
// Prints a table, then the JSON (also written to --json FILE).
//
//   build/bench/group_snapshot_bench [--sizes 1,2,4,8,16] [--rounds 7]
//                                    [--no-libvirt] [--json FILE]
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "libvirt_side.h"
#include "report.h"
#include "stats.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

struct Args {
  std::vector<int> sizes = {1, 2, 4, 8, 16};
  int rounds = 7;
  bool libvirt = true;
  std::string json_file;
  std::string image_dir;  // worker only
  bool worker = false;
};

Result<Samples> MeasureVmgroup(int n, int rounds, int type) {
  testing::TempDir dir;
  auto e = engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  auto g = testing::MakeTinyGroup(engine, dir / "images", "b", n, {});
  Samples out;
  Status status = g.status();
  for (int r = 0; r <= rounds && status.ok(); ++r) {  // round 0 warms up
    auto s = engine.snapshots().Create({.collection_id = g->collection_id, .type = type});
    status = s.status();
    if (!s.ok() || r == 0) continue;
    int64_t max_pause = 0;
    for (const auto& m : s->members) max_pause = std::max(max_pause, m.pause_us);
    out.window_us.push_back(s->pause_window_us);
    out.max_pause_us.push_back(max_pause);
    out.total_us.push_back(s->duration_us);
  }
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return out;
}

int Usage() {
  std::fprintf(stderr,
               "usage: group_snapshot_bench [--sizes 1,2,4,8,16] [--rounds N] [--no-libvirt] "
               "[--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--sizes")
      a.sizes = ParseList(next());
    else if (arg == "--rounds")
      a.rounds = std::stoi(next());
    else if (arg == "--no-libvirt")
      a.libvirt = false;
    else if (arg == "--json")
      a.json_file = next();
    else if (arg == "--libvirt-worker")
      a.worker = true;
    else if (arg == "--image-dir")
      a.image_dir = next();
    else
      return Usage();
  }
  if (a.sizes.empty() || a.rounds < 1) return Usage();

  if (a.worker) {  // the unprivileged side, started by RunLibvirtWorker
    auto r = MeasureLibvirt("qemu:///session", a.image_dir, a.sizes, a.rounds);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    json j = json::object();
    for (const auto& [n, s] : *r) j[std::to_string(n)] = ToJson(s);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }

  std::map<int, Samples> ours, recovery, theirs;
  for (int n : a.sizes) {
    for (auto [type, into] : {std::pair{32768, &ours}, std::pair{2, &recovery}}) {
      std::fprintf(stderr, "vmgroup: %d VMs x 2 disks, type %d, %d rounds...\n", n, type, a.rounds);
      auto s = MeasureVmgroup(n, a.rounds, type);
      if (!s.ok()) {
        std::fprintf(stderr, "vmgroup side failed: %s\n", s.status().ToString().c_str());
        return 1;
      }
      (*into)[n] = *s;
    }
  }
  std::string libvirt_error;
  if (a.libvirt) {
    std::fprintf(stderr, "libvirt: session libvirtd as nobody, same sizes...\n");
    testing::TempDir dir;
    auto out = RunLibvirtSamples(Env::Default(), dir.path(),
                                 {"--libvirt-worker", "--sizes", Join(a.sizes), "--rounds",
                                  std::to_string(a.rounds), "--image-dir", dir / "img"});
    if (out.ok()) {
      theirs = *out;
    } else {
      libvirt_error = out.status().ToString();
    }
    if (!libvirt_error.empty())
      std::fprintf(stderr, "libvirt side failed: %s\n", libvirt_error.c_str());
  }

  std::printf(
      "group snapshot, N VMs x 2 disks, QEMU TCG, %d rounds each (ms); vmgroup = disk-only "
      "(type 32768), +bitmap = recovery (type 2), libvirt = disk-only atomic\n",
      a.rounds);
  std::printf("%s", kRowHeader);
  json report = {{"rounds", a.rounds},        {"accel", "tcg"},
                 {"vmgroup", json::object()}, {"vmgroup_recovery", json::object()},
                 {"libvirt", json::object()}, {"ratio_window_median", json::object()}};
  for (int n : a.sizes) {
    PrintRow("vmgroup", n, ours[n]);
    PrintRow("+bitmap", n, recovery[n]);
    report["vmgroup"][std::to_string(n)] = ToJson(ours[n]);
    report["vmgroup_recovery"][std::to_string(n)] = ToJson(recovery[n]);
    if (theirs.count(n)) {
      PrintRow("libvirt", n, theirs[n]);
      report["libvirt"][std::to_string(n)] = ToJson(theirs[n]);
      double ratio = Median(ours[n].window_us) / Median(theirs[n].window_us);
      report["ratio_window_median"][std::to_string(n)] = ratio;
      std::printf("ratio    %3d | vmgroup window / libvirt window = %.3f\n", n, ratio);
    }
  }
  if (!libvirt_error.empty()) report["libvirt_error"] = libvirt_error;

  std::printf("targets:\n");
  auto target = [&](int n, double limit_ms) {
    if (!ours.count(n)) return;
    double m = Ms(Median(ours[n].window_us));
    std::printf("  N=%-2d median window %.2f ms <= %.0f ms: %s\n", n, m, limit_ms,
                m <= limit_ms ? "met" : "MISSED");
  };
  target(4, 15);
  target(16, 40);
  for (int n : a.sizes) {
    if (!theirs.count(n)) continue;
    double r = Median(ours[n].window_us) / Median(theirs[n].window_us);
    std::printf("  N=%-2d window <= 1/10 of libvirt's: %.3f %s\n", n, r,
                r <= 0.1 ? "met" : "MISSED");
  }
  std::printf("%s\n", report.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << report.dump(2) << "\n";
  return 0;
}
