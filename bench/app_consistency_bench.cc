// app_consistency_bench: application-consistent group snapshots (ConsistencyLevel
// 1) of N real guests (default 4) that keep creating and renaming files on
// ext4, each with its guest agent: the freeze window (first freeze sent ->
// last thaw answered) and the group pause window, next to a crash-consistent
// snapshot of the same guests. In the same run, the peer: the same guests
// under a session libvirtd, snapshotted the way an operator scripts it with
// libvirt's API (freeze every guest, suspend all, disk-only snapshot of
// each, resume all, thaw every guest; one thread per domain per phase).
// Guests: tests/guest_kit (agent=1 writer=fs), QEMU under TCG. Prints a
// table, then the JSON (also written to --json FILE).
//
//   build/bench/app_consistency_bench [--vms 4] [--rounds 7] [--no-libvirt] [--json FILE]
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "guests.h"
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
  int vms = 4, rounds = 7;
  bool libvirt = true;
  std::string json_file, kit = GUEST_KIT_DIR;
  // worker only
  bool worker = false;
  std::string image_dir;
};

GuestSpec Guest(const Args& a) {
  return {.memory_mib = 128,
          .kernel = a.kit + "/vmlinuz",
          .initrd = a.kit + "/initrd.gz",
          .cmdline = "console=ttyS0 panic=-1 quiet agent=1 writer=fs",
          .ready_marker = "AGENT-READY",
          .agent = true};
}

// Each round's figures: window_us the pause window, max_pause_us the longest
// member pause, total_us the freeze window (application consistent) or the
// whole snapshot (crash consistent).
struct Measured {
  Samples app, crash;
};

Result<Measured> MeasureVmgroup(const Args& a) {
  testing::TempDir dir;
  auto e = engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  const GuestSpec g = Guest(a);
  auto group = testing::MakeTinyGroup(engine, dir / "images", "app", a.vms, GuestOptions(g),
                                      /*start=*/false);
  if (!group.ok()) return group.status();
  Status status;
  for (const auto& id : group->vm_ids) {
    if (status.ok())
      status = testing::MakeExt4Image(engine.catalog().GetVm(id)->disks[0], 64 << 20);
    if (status.ok()) status = engine.vms().Start(id);
  }
  // Ready: the agent answers and the workload writes.
  for (const std::string& marker : {g.ready_marker, std::string("wrote ")}) {
    if (status.ok()) status = WaitForMarker(engine, group->vm_ids, marker);
  }
  Measured out;
  auto take = [&](catalog::Consistency level, Samples& into) -> Status {
    auto s = engine.snapshots().Create(
        {.collection_id = group->collection_id, .type = 32768, .consistency = level});
    if (!s.ok()) return s.status();
    int64_t longest = 0;
    for (const auto& m : s->members) {
      longest = std::max(longest, m.pause_us);
      if (m.consistency != level) return Status::Failed("a member fell back to crash consistency");
    }
    into.window_us.push_back(s->pause_window_us);
    into.max_pause_us.push_back(longest);
    into.total_us.push_back(level == catalog::Consistency::kApplication ? s->freeze_window_us
                                                                        : s->duration_us);
    return Status::Ok();
  };
  // Snapshots are kept, as on the libvirt side: a destroy between rounds
  // would load the host's disk while the next freeze flushes the guests.
  for (auto [level, into] : {std::pair{catalog::Consistency::kApplication, &out.app},
                             std::pair{catalog::Consistency::kCrash, &out.crash}}) {
    for (int r = 0; r <= a.rounds && status.ok(); ++r) {  // round 0 warms up
      Samples warm;
      status = take(level, r == 0 ? warm : *into);
    }
  }
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return out;
}

void PrintRow(const char* who, const Samples& s, const char* total) {
  std::printf("%-14s | %8.2f %8.2f | %8.2f %8.2f | %8.1f %8.1f  (%s)\n", who,
              Ms(Median(s.window_us)), Ms(P95(s.window_us)), Ms(Median(s.max_pause_us)),
              Ms(P95(s.max_pause_us)), Ms(Median(s.total_us)), Ms(P95(s.total_us)), total);
}

int Usage() {
  std::fprintf(
      stderr, "usage: app_consistency_bench [--vms N] [--rounds N] [--no-libvirt] [--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--vms")
      a.vms = std::atoi(next().c_str());
    else if (arg == "--rounds")
      a.rounds = std::atoi(next().c_str());
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
  if (a.vms < 1 || a.rounds < 1) return Usage();

  if (a.worker) {  // the unprivileged side, started by RunLibvirtWorker
    auto r = MeasureLibvirtQuiesced("qemu:///session", a.image_dir, Guest(a), a.vms, a.rounds);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    std::printf("%s\n", json{{std::to_string(a.vms), ToJson(*r)}}.dump().c_str());
    return 0;
  }

  auto kit = Env::Default()->Run({GUEST_KIT_BUILD, a.kit}, std::chrono::minutes(5));
  if (!kit.ok() || kit->exit_code != 0) {
    std::fprintf(stderr, "cannot build the guest kit: %s\n",
                 kit.ok() ? kit->err.c_str() : kit.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "vmgroup: %d guests, %d rounds each of application and crash...\n", a.vms,
               a.rounds);
  auto ours = MeasureVmgroup(a);
  if (!ours.ok()) {
    std::fprintf(stderr, "vmgroup side failed: %s\n", ours.status().ToString().c_str());
    return 1;
  }
  std::optional<Samples> theirs;
  std::string libvirt_error;
  if (a.libvirt) {
    std::fprintf(stderr, "libvirt: session libvirtd as nobody, the same guests...\n");
    testing::TempDir dir;
    auto out = RunLibvirtSamples(Env::Default(), dir.path(),
                                 {"--libvirt-worker", "--vms", std::to_string(a.vms), "--rounds",
                                  std::to_string(a.rounds), "--image-dir", dir / "img"});
    if (out.ok() && out->count(a.vms)) {
      theirs = out->at(a.vms);
    } else {
      libvirt_error = out.ok() ? "no samples" : out.status().ToString();
      std::fprintf(stderr, "libvirt side failed: %s\n", libvirt_error.c_str());
    }
  }

  std::printf(
      "application-consistent group snapshot of %d guests writing files on ext4, QEMU TCG, "
      "%d rounds each (ms)\n",
      a.vms, a.rounds);
  std::printf(
      "who            | pause window med p95 | 1-VM pause med  p95 | last column med  p95\n");
  PrintRow("vmgroup app", ours->app, "freeze window");
  PrintRow("vmgroup crash", ours->crash, "whole snapshot");
  json report = {{"vms", a.vms},
                 {"rounds", a.rounds},
                 {"accel", "tcg"},
                 {"vmgroup_application", ToJson(ours->app)},
                 {"vmgroup_crash", ToJson(ours->crash)}};
  if (theirs) {
    PrintRow("libvirt app", *theirs, "freeze window");
    report["libvirt_application"] = ToJson(*theirs);
    const double freeze = Median(ours->app.total_us) / Median(theirs->total_us);
    const double pause = Median(ours->app.window_us) / Median(theirs->window_us);
    report["ratio_freeze_window_median"] = freeze;
    report["ratio_pause_window_median"] = pause;
    std::printf("ratio          | vmgroup / libvirt: freeze window %.3f, pause window %.3f\n",
                freeze, pause);
  }
  if (!libvirt_error.empty()) report["libvirt_error"] = libvirt_error;
  std::printf("freezing costs the pause window: %.2f ms (application) vs %.2f ms (crash)\n",
              Ms(Median(ours->app.window_us)), Ms(Median(ours->crash.window_us)));
  std::printf("%s\n", report.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << report.dump(2) << "\n";
  return 0;
}
