// memory_snapshot_bench: the group pause window of Standard snapshots with
// memory state (type 1) for real guests of each RAM size (default 128 MiB
// and 1 GiB, half of it filled), next to the disk-only window (type 32768)
// of the same VMs, and in the same run libvirt's external snapshot with
// memory (<memory snapshot='external'>, the --memspec of virsh) of identical
// guests, which pauses each domain while its RAM is written. Then the time
// to apply a memory snapshot to a group until every VM runs again. With
// --hugepages, also the same rounds for guests whose RAM is on 2 MiB huge
// pages (vm create --hugepages): the pages are reserved for the run (as
// root) and the host's pool is given back its size after.
// Guests: tests/guest_kit (Debian's cloud kernel, busybox), QEMU under TCG.
// Prints the load before and after (other work on the machine skews the
// figures), a table, the targets, then the JSON (also written to --json FILE).
//
//   build/bench/memory_snapshot_bench [--sizes 128,1024] [--vms 2] [--rounds 5]
//                                     [--apply-vms 4] [--hugepages] [--no-libvirt]
//                                     [--json FILE]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/huge_pages.h"
#include "engine/snapshot_plan.h"
#include "guests.h"
#include "host_load.h"
#include "libvirt_side.h"
#include "report.h"
#include "stats.h"
#include "testing/guest_kit.h"
#include "testing/huge_page_pool.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

struct Args {
  std::vector<int> sizes = {128, 1024};
  int vms = 2, rounds = 5, apply_vms = 4;
  bool libvirt = true, hugepages = false;
  std::string json_file, kit = GUEST_KIT_DIR;
  // worker only
  bool worker = false;
  std::string image_dir;
};

std::string Workload(int memory_mib) {
  return testing::GuestKernelArgs("counter=mem fill=" + std::to_string(memory_mib / 2));
}

GuestSpec Guest(const Args& a, int memory_mib) {
  return {memory_mib, a.kit + "/vmlinuz", a.kit + "/initrd.gz", Workload(memory_mib), "count 2"};
}

struct Measured {
  Samples disk_only, memory;
  std::vector<int64_t> state_bytes;  // memory state size per member snapshot
  std::vector<int64_t> apply_us;     // apply until all run (only when asked)
};

// One engine, `n` guests of `memory_mib` (their RAM on huge pages when
// `hugepages`): rounds of a disk-only and a memory snapshot, each destroyed
// after (so the disk holds one state at a time); with `apply`, rounds of
// applying a memory snapshot instead.
Result<Measured> MeasureVmgroup(const Args& a, int memory_mib, int n, bool apply,
                                bool hugepages = false) {
  testing::TempDir dir;
  auto e = engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  const GuestSpec g = Guest(a, memory_mib);
  testing::TinyVmOptions options = GuestOptions(g);
  options.config.hugepages = hugepages;
  auto group = testing::MakeTinyGroup(engine, dir / "images", "m", n, options);
  Measured out;
  Status status = group.status();
  if (status.ok()) status = WaitForMarker(engine, group->vm_ids, g.ready_marker);
  auto take = [&](int type, Samples& into, bool keep) -> Result<std::string> {
    auto s = engine.snapshots().Create({.collection_id = group->collection_id, .type = type});
    if (!s.ok()) return s.status();
    int64_t longest = 0;
    for (const auto& m : s->members) {
      longest = std::max(longest, m.pause_us);
      if (!m.memory_state.empty()) {
        out.state_bytes.push_back(static_cast<int64_t>(std::filesystem::file_size(m.memory_state)));
      }
    }
    into.window_us.push_back(s->pause_window_us);
    into.max_pause_us.push_back(longest);
    into.total_us.push_back(s->duration_us);
    if (!keep) VMG_RETURN_IF_ERROR(engine.snapshots().Destroy({.snapshot_id = s->id}));
    return s->id;
  };
  if (apply && status.ok()) {
    Samples unused;
    auto id = take(engine::kSnapshotStandard, unused, /*keep=*/true);
    status = id.status();
    for (int r = 0; r < a.rounds && status.ok(); ++r) {
      const auto t0 = Clock::now();
      status = engine.snapshots().Apply({.snapshot_id = *id}).status();
      out.apply_us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    }
  }
  for (int r = 0; !apply && r <= a.rounds && status.ok(); ++r) {  // round 0 warms up
    Samples warm;
    status = take(32768, r == 0 ? warm : out.disk_only, false).status();
    if (status.ok())
      status = take(engine::kSnapshotStandard, r == 0 ? warm : out.memory, false).status();
  }
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return out;
}

int Usage() {
  std::fprintf(stderr,
               "usage: memory_snapshot_bench [--sizes 128,1024] [--vms N] [--rounds N] "
               "[--apply-vms N] [--hugepages] [--no-libvirt] [--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--sizes")
      a.sizes = ParseList(next());
    else if (arg == "--vms")
      a.vms = std::atoi(next().c_str());
    else if (arg == "--rounds")
      a.rounds = std::atoi(next().c_str());
    else if (arg == "--apply-vms")
      a.apply_vms = std::atoi(next().c_str());
    else if (arg == "--no-libvirt")
      a.libvirt = false;
    else if (arg == "--hugepages")
      a.hugepages = true;
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
  if (a.sizes.empty() || a.vms < 1 || a.rounds < 1) return Usage();

  if (a.worker) {  // the unprivileged side: libvirt, each size in turn
    json j = json::object();
    for (int mib : a.sizes) {
      auto r = MeasureLibvirtMemory("qemu:///session", a.image_dir, Guest(a, mib), a.vms, a.rounds);
      if (!r.ok()) {
        std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
        return 1;
      }
      j[std::to_string(mib)] = ToJson(*r);
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }

  const std::string load_before = HostLoad();
  std::fprintf(stderr, "before: %s\n", load_before.c_str());
  auto kit = Env::Default()->Run({GUEST_KIT_BUILD, a.kit}, std::chrono::minutes(5));
  if (!kit.ok() || kit->exit_code != 0) {
    std::fprintf(stderr, "cannot build the guest kit\n");
    return 1;
  }
  std::map<int, Measured> ours, huge;
  for (int mib : a.sizes) {
    std::fprintf(stderr, "vmgroup: %d guests of %d MiB, %d rounds...\n", a.vms, mib, a.rounds);
    auto m = MeasureVmgroup(a, mib, a.vms, false);
    if (!m.ok()) {
      std::fprintf(stderr, "vmgroup side failed: %s\n", m.status().ToString().c_str());
      return 1;
    }
    ours[mib] = *m;
  }
  if (a.hugepages) {
    // Each size's guests end before the next size's start: the largest
    // group's pages do.
    const int largest = *std::max_element(a.sizes.begin(), a.sizes.end());
    auto pool = testing::HugePagePool::Reserve(a.vms * HugePagesFor(largest));
    if (!pool.ok()) {
      std::fprintf(stderr, "--hugepages: %s\n", pool.status().ToString().c_str());
      return 1;
    }
    for (int mib : a.sizes) {
      std::fprintf(stderr, "vmgroup: %d guests of %d MiB on huge pages, %d rounds...\n", a.vms, mib,
                   a.rounds);
      auto m = MeasureVmgroup(a, mib, a.vms, false, /*hugepages=*/true);
      if (!m.ok()) {
        std::fprintf(stderr, "vmgroup side (huge pages) failed: %s\n",
                     m.status().ToString().c_str());
        return 1;
      }
      huge[mib] = *m;
    }
  }  // the pool is given back its size here
  std::fprintf(stderr, "vmgroup: applying a memory snapshot to %d guests of %d MiB...\n",
               a.apply_vms, a.sizes.front());
  auto applied = MeasureVmgroup(a, a.sizes.front(), a.apply_vms, true);
  if (!applied.ok()) {
    std::fprintf(stderr, "apply failed: %s\n", applied.status().ToString().c_str());
    return 1;
  }

  std::map<int, Samples> theirs;
  std::string libvirt_error;
  if (a.libvirt) {
    std::fprintf(stderr, "libvirt: session libvirtd as nobody, same guests...\n");
    testing::TempDir dir;
    // The session QEMU runs as nobody: it reads the kit from the worker's tree.
    (void)Env::Default()->CreateDirs(dir / "img");
    for (const char* f : {"vmlinuz", "initrd.gz"}) {
      std::filesystem::copy_file(a.kit + "/" + f, dir / ("img/" + std::string(f)));
    }
    auto out = RunLibvirtSamples(
        Env::Default(), dir.path(),
        {"--libvirt-worker", "--sizes", Join(a.sizes), "--vms", std::to_string(a.vms), "--rounds",
         std::to_string(a.rounds), "--image-dir", dir / "img", "--kit", dir / "img"});
    if (out.ok()) {
      theirs = *out;
    } else {
      libvirt_error = out.status().ToString();
    }
    if (!libvirt_error.empty())
      std::fprintf(stderr, "libvirt side failed: %s\n", libvirt_error.c_str());
  }

  std::printf("group of %d guests (half their RAM filled), QEMU TCG, %d rounds (ms, medians)\n",
              a.vms, a.rounds);
  std::printf(
      "RAM MiB | disk-only window | memory window  p95 | whole  | state MiB | libvirt memspec "
      "window | ratio\n");
  json report = {{"vms", a.vms}, {"rounds", a.rounds}, {"accel", "tcg"}, {"sizes", json::object()}};
  for (int mib : a.sizes) {
    const Measured& m = ours[mib];
    const double disk = Median(m.disk_only.window_us), mem = Median(m.memory.window_us);
    const double lv = theirs.count(mib) ? Median(theirs[mib].window_us) : 0;
    std::printf("%7d | %16.2f | %13.2f %6.2f | %6.0f | %9.1f | %22.1f | %s\n", mib, Ms(disk),
                Ms(mem), Ms(P95(m.memory.window_us)), Ms(Median(m.memory.total_us)),
                Median(m.state_bytes) / 1048576.0, Ms(lv),
                lv > 0 ? std::to_string(mem / lv).c_str() : "-");
    json row = {{"disk_only", ToJson(m.disk_only)},
                {"memory", ToJson(m.memory)},
                {"state_bytes", m.state_bytes}};
    if (theirs.count(mib)) {
      row["libvirt_memspec"] = ToJson(theirs[mib]);
      row["ratio_memory_window_to_libvirt"] = mem / lv;
    }
    report["sizes"][std::to_string(mib)] = row;
  }
  if (a.hugepages) {
    std::printf("the same guests with their RAM on 2 MiB huge pages (ms, medians)\n");
    std::printf("RAM MiB | disk-only window | memory window  p95 | whole  | state MiB\n");
    for (int mib : a.sizes) {
      const Measured& m = huge[mib];
      std::printf("%7d | %16.2f | %13.2f %6.2f | %6.0f | %9.1f\n", mib,
                  Ms(Median(m.disk_only.window_us)), Ms(Median(m.memory.window_us)),
                  Ms(P95(m.memory.window_us)), Ms(Median(m.memory.total_us)),
                  Median(m.state_bytes) / 1048576.0);
      report["sizes"][std::to_string(mib)]["hugepages"] = {{"disk_only", ToJson(m.disk_only)},
                                                           {"memory", ToJson(m.memory)},
                                                           {"state_bytes", m.state_bytes}};
    }
  }
  std::printf(
      "apply a memory snapshot to %d guests of %d MiB until all run: median %.0f ms, p95 %.0f ms\n",
      a.apply_vms, a.sizes.front(), Ms(Median(applied->apply_us)), Ms(P95(applied->apply_us)));
  report["apply_vms"] = a.apply_vms;
  report["apply_us"] = applied->apply_us;
  if (!libvirt_error.empty()) report["libvirt_error"] = libvirt_error;

  std::printf("targets:\n");
  for (int mib : a.sizes) {
    if (!theirs.count(mib)) continue;
    const double r = Median(ours[mib].memory.window_us) / Median(theirs[mib].window_us);
    std::printf("  %d MiB: memory window / libvirt memspec window = %.3f (at most 0.1: %s)\n", mib,
                r, r <= 0.1 ? "met" : "MISSED");
  }
  for (int mib : a.sizes) {
    if (!huge.count(mib)) continue;
    const double w = Ms(Median(huge[mib].memory.window_us));
    std::printf("  %d MiB on huge pages: memory window median %.2f ms (at most 10 ms: %s)\n", mib,
                w, w <= 10.0 ? "met" : "MISSED");
  }
  const std::string load_after = HostLoad();
  std::printf("before: %s\nafter:  %s\n", load_before.c_str(), load_after.c_str());
  report["load_before"] = load_before;
  report["load_after"] = load_after;
  std::printf("%s\n", report.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << report.dump(2) << "\n";
  return 0;
}
