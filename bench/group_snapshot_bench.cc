// group_snapshot_bench: the group pause window, the longest single-VM pause
// and the end-to-end time of a group snapshot, for groups of N VMs with two
// 16 MiB qcow2 disks each (QEMU under TCG), several rounds per N and load;
// and in the same run the same measure for libvirt's API on identical VMs
// under the same load (suspend all -> disk-only atomic snapshot of each ->
// resume all), with the ratio. vmgroup is measured twice on the same VMs:
// first rounds of disk-only snapshots (type 32768: the same work as
// libvirt's disk-only snapshot, the comparison that counts), then rounds of
// recovery snapshots (type 2: also a persistent dirty bitmap per disk). For
// vmgroup also what each member's pause is made of (engine::CutTiming).
// Loads: idle (the VMs sit in their firmware, 64 MiB), seq and heavy
// (tests/guest_kit guests of 128 MiB writing to their first disk all the
// time: writer=raw, one 512-byte O_DIRECT write + fsync after another, and
// writer=heavy, 4 MiB in 1 MiB O_DIRECT writes then fsync).
// Prints a table, then the JSON (also written to --json FILE).
//
//   build/bench/group_snapshot_bench [--sizes 1,4,16] [--load idle,seq,heavy]
//                                    [--rounds 7] [--no-libvirt] [--json FILE]
//
// Memory: a loaded member's QEMU holds about 240 MiB (its 128 MiB guest
// RAM, TCG's code and QEMU's own), an idle one less; only one side runs its
// VMs at a time, so N = 64 under load needs about 15 GiB free.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "guests.h"
#include "host_load.h"
#include "libvirt_side.h"
#include "report.h"
#include "stats.h"
#include "testing/guest_kit.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

struct Args {
  std::vector<int> sizes = {1, 4, 16};
  std::vector<std::string> loads = {"idle", "seq", "heavy"};
  int rounds = 7;
  bool libvirt = true;
  std::string json_file, kit = GUEST_KIT_DIR;
  std::string image_dir;  // worker only
  bool worker = false;
};

std::vector<std::string> ParseWords(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

// The guest of a load; none for idle (firmware only).
std::optional<GuestSpec> Guest(const std::string& kit, const std::string& load) {
  if (load == "idle") return std::nullopt;
  const std::string writer = load == "seq" ? "raw" : load;
  return GuestSpec{128, kit + "/vmlinuz", kit + "/initrd.gz",
                   testing::GuestKernelArgs("writer=" + writer), "wrote "};
}

// What the members' pauses were made of, one sample per member and cut (us).
struct Parts {
  std::vector<int64_t> stop, transaction, wait, resume;
  void Add(const engine::CutTiming& t) {
    if (t.pause_us == 0) return;
    stop.push_back(t.stopped_us);
    transaction.push_back(t.switched_us - t.stopped_us);
    wait.push_back(t.resume_sent_us - t.switched_us);
    resume.push_back(t.pause_us - t.resume_sent_us);
  }
  json ToJson() const {
    return {
        {"stop_us", stop}, {"switch_us", transaction}, {"wait_us", wait}, {"resume_us", resume}};
  }
};

struct Measured {
  Samples disk_only, recovery;
  Parts disk_only_parts, recovery_parts;
};

// One group of `n` VMs under `load`: rounds of disk-only snapshots, then
// rounds of recovery snapshots, each after one warm-up.
Result<Measured> MeasureVmgroup(const Args& a, const std::string& load, int n) {
  testing::TempDir dir;
  auto e = engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  const auto guest = Guest(a.kit, load);
  testing::TinyVmOptions options;
  if (guest) {
    options = GuestOptions(*guest);
    options.disks = 2;
    options.disk_bytes = 16 << 20;
  }
  auto g = testing::MakeTinyGroup(engine, dir / "images", "b", n, options);
  Measured out;
  Status status = g.status();
  if (status.ok() && guest) status = WaitForMarker(engine, g->vm_ids, guest->ready_marker);
  // Every disk-only round before the first recovery one: a snapshot whose
  // old top holds a bitmap pays for writing it out, so rounds in turn would
  // charge the recovery snapshot's cost to the disk-only one after it.
  for (int type : {32768, 2}) {
    for (int r = 0; r <= a.rounds && status.ok(); ++r) {  // round 0 warms up
      Samples& into = type == 2 ? out.recovery : out.disk_only;
      Parts& parts = type == 2 ? out.recovery_parts : out.disk_only_parts;
      std::vector<engine::CutTiming> timings;
      auto s = engine.snapshots().Create(
          {.collection_id = g->collection_id,
           .type = type,
           .cut_timings = [&](const std::vector<engine::CutTiming>& t) { timings = t; }});
      status = s.status();
      if (!s.ok()) break;
      if (r == 0) continue;
      int64_t max_pause = 0;
      for (const auto& m : s->members) max_pause = std::max(max_pause, m.pause_us);
      into.window_us.push_back(s->pause_window_us);
      into.max_pause_us.push_back(max_pause);
      into.total_us.push_back(s->duration_us);
      for (const auto& t : timings) parts.Add(t);
    }
  }
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return out;
}

void PrintParts(int n, const Parts& p) {
  std::printf(
      "  parts %3d | stop %6.2f  switch %6.2f  wait %6.2f  resume %6.2f  (member medians)\n", n,
      Ms(Median(p.stop)), Ms(Median(p.transaction)), Ms(Median(p.wait)), Ms(Median(p.resume)));
}

int Usage() {
  std::fprintf(stderr,
               "usage: group_snapshot_bench [--sizes 1,4,16] [--load idle,seq,heavy] [--rounds N] "
               "[--no-libvirt] [--json FILE]\n");
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
    else if (arg == "--load")
      a.loads = ParseWords(next());
    else if (arg == "--rounds")
      a.rounds = std::stoi(next());
    else if (arg == "--no-libvirt")
      a.libvirt = false;
    else if (arg == "--json")
      a.json_file = next();
    else if (arg == "--kit")
      a.kit = next();
    else if (arg == "--libvirt-worker")
      a.worker = true;
    else if (arg == "--image-dir")
      a.image_dir = next();
    else
      return Usage();
  }
  const bool loads_ok = std::all_of(a.loads.begin(), a.loads.end(), [](const std::string& l) {
    return l == "idle" || l == "seq" || l == "heavy";
  });
  if (a.sizes.empty() || a.loads.empty() || !loads_ok || a.rounds < 1) return Usage();

  if (a.worker) {  // the unprivileged side, started by RunLibvirtWorker, one load
    const auto guest = Guest(a.kit, a.loads.front());
    auto r = MeasureLibvirt("qemu:///session", a.image_dir, a.sizes, a.rounds,
                            guest ? &*guest : nullptr);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    json j = json::object();
    for (const auto& [n, s] : *r) j[std::to_string(n)] = ToJson(s);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }

  const std::string load_before = HostLoad();
  std::fprintf(stderr, "%s\n", load_before.c_str());
  if (a.loads != std::vector<std::string>{"idle"}) {
    auto kit = Env::Default()->Run({GUEST_KIT_BUILD, a.kit}, std::chrono::minutes(5));
    if (!kit.ok() || kit->exit_code != 0) {
      std::fprintf(stderr, "cannot build the guest kit\n");
      return 1;
    }
  }
  std::map<std::string, std::map<int, Measured>> ours;
  std::map<std::string, std::map<int, Samples>> theirs;
  std::map<std::string, std::string> libvirt_error;
  std::map<std::string, std::map<int, std::string>> vmgroup_error;
  for (const std::string& load : a.loads) {
    for (int n : a.sizes) {
      std::fprintf(stderr, "vmgroup: %d VMs x 2 disks, load %s, %d rounds of each type...\n", n,
                   load.c_str(), a.rounds);
      auto m = MeasureVmgroup(a, load, n);
      if (!m.ok()) {  // reported with the figures; the other sizes and loads still run
        vmgroup_error[load][n] = m.status().ToString();
        std::fprintf(stderr, "vmgroup side failed: %s\n", vmgroup_error[load][n].c_str());
        continue;
      }
      ours[load][n] = *m;
    }
    if (!a.libvirt) continue;
    std::fprintf(stderr, "libvirt: session libvirtd as nobody, load %s, same sizes...\n",
                 load.c_str());
    testing::TempDir dir;
    // The session QEMU runs as nobody: it reads the kit from the worker's tree.
    (void)Env::Default()->CreateDirs(dir / "img");
    if (load != "idle") {
      for (const char* f : {"vmlinuz", "initrd.gz"}) {
        std::filesystem::copy_file(a.kit + "/" + f, dir / ("img/" + std::string(f)));
      }
    }
    auto out = RunLibvirtSamples(
        Env::Default(), dir.path(),
        {"--libvirt-worker", "--sizes", Join(a.sizes), "--load", load, "--rounds",
         std::to_string(a.rounds), "--image-dir", dir / "img", "--kit", dir / "img"});
    if (out.ok()) {
      theirs[load] = *out;
    } else {
      libvirt_error[load] = out.status().ToString();
      std::fprintf(stderr, "libvirt side failed: %s\n", libvirt_error[load].c_str());
    }
  }
  const std::string load_after = HostLoad();

  std::printf("before: %s\nafter:  %s\n", load_before.c_str(), load_after.c_str());
  json report = {{"rounds", a.rounds},
                 {"accel", "tcg"},
                 {"host_before", load_before},
                 {"host_after", load_after},
                 {"loads", json::object()}};
  std::vector<std::string> targets;
  auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
  char line[200];
  for (const std::string& load : a.loads) {
    std::printf(
        "\nload %s: group snapshot, N VMs x 2 disks, QEMU TCG, %d rounds each (ms); vmgroup = "
        "disk-only (type 32768), +bitmap = recovery (type 2), libvirt = disk-only atomic\n",
        load.c_str(), a.rounds);
    std::printf("%s", kRowHeader);
    json& r = report["loads"][load];
    for (int n : a.sizes) {
      const std::string key = std::to_string(n);
      if (!ours[load].count(n)) {
        std::printf("vmgroup  %3d | failed: %s\n", n, vmgroup_error[load][n].c_str());
        r["vmgroup_error"][key] = vmgroup_error[load][n];
        if (theirs[load].count(n)) {
          PrintRow("libvirt", n, theirs[load][n]);
          r["libvirt"][key] = ToJson(theirs[load][n]);
        }
        continue;
      }
      const Measured& m = ours[load][n];
      PrintRow("vmgroup", n, m.disk_only);
      PrintParts(n, m.disk_only_parts);
      PrintRow("+bitmap", n, m.recovery);
      PrintParts(n, m.recovery_parts);
      r["vmgroup"][key] = ToJson(m.disk_only);
      r["vmgroup_parts"][key] = m.disk_only_parts.ToJson();
      r["vmgroup_recovery"][key] = ToJson(m.recovery);
      r["vmgroup_recovery_parts"][key] = m.recovery_parts.ToJson();
      const double ours_ms = Ms(Median(m.disk_only.window_us));
      const double rec = Median(m.recovery.window_us) / Median(m.disk_only.window_us);
      std::snprintf(line, sizeof line, "%-5s N=%-2d median window %.2f ms <= %d ms: %s",
                    load.c_str(), n, ours_ms, n, verdict(ours_ms <= n));
      targets.push_back(line);
      std::snprintf(line, sizeof line, "%-5s N=%-2d recovery window / disk-only = %.2f <= 1.25: %s",
                    load.c_str(), n, rec, verdict(rec <= 1.25));
      targets.push_back(line);
      if (!theirs[load].count(n)) continue;
      const Samples& lv = theirs[load][n];
      PrintRow("libvirt", n, lv);
      r["libvirt"][key] = ToJson(lv);
      const double ratio = Median(m.disk_only.window_us) / Median(lv.window_us);
      r["ratio_window_median"][key] = ratio;
      std::printf("ratio    %3d | vmgroup window / libvirt window = %.3f\n", n, ratio);
      std::snprintf(line, sizeof line, "%-5s N=%-2d window / libvirt's = %.3f <= 1/20: %s",
                    load.c_str(), n, ratio, verdict(ratio <= 0.05));
      targets.push_back(line);
    }
    if (libvirt_error.count(load)) r["libvirt_error"] = libvirt_error[load];
  }
  std::printf("\ntargets:\n");
  for (const auto& t : targets) std::printf("  %s\n", t.c_str());
  std::printf("%s\n", report.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << report.dump(2) << "\n";
  return 0;
}
