// app_consistency_bench: application-consistent group snapshots (ConsistencyLevel
// 1) of N real guests (default 4) that keep creating and renaming files on
// ext4, each with its guest agent: the freeze window (first freeze sent ->
// last thaw answered) and the group pause window, next to a crash-consistent
// snapshot of the same guests. In the same run, the peer: the same guests
// under a session libvirtd, snapshotted the way an operator scripts it with
// libvirt's API (freeze every guest, suspend all, disk-only snapshot of
// each, resume all, thaw every guest; one thread per domain per phase).
// Guests: tests/guest_kit (agent=1 writer=fs), QEMU under TCG. Prints a
// table, then each side's per-guest timeline (freeze sent and answered,
// cut, thaw sent and answered: freeze_timeline.h) as medians and p95 and
// round by round, the host's load before and after, then the JSON (also
// written to --json FILE).
//
// Before each round's first freeze both sides let the guests write for
// --gap-ms since the previous round's last thaw: a freeze flushes what was
// written since the last one, so unequal gaps would compare unequal work.
//
//   build/bench/app_consistency_bench [--vms 4] [--rounds 7] [--gap-ms 1000] [--no-libvirt]
//                                     [--json FILE]
#include <climits>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/guest_freeze.h"
#include "freeze_timeline.h"
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
  int vms = 4, rounds = 7, gap_ms = 1000;
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
          .cmdline = testing::GuestKernelArgs("agent=1 writer=fs"),
          .ready_marker = "AGENT-READY",
          .agent = true};
}

// Each round's figures: window_us the pause window, max_pause_us the longest
// member pause, total_us the freeze window (application consistent) or the
// whole snapshot (crash consistent).
struct Measured {
  Samples app, crash;
  std::vector<RoundTimeline> timelines;  // of the application-consistent rounds
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
  // Wall clock: the previous application-consistent round's last thaw,
  // when this round was told 50 %, and how long the previous round took
  // from there to its first freeze (opening the agents, arming the guard).
  int64_t last_thaw_us = 0, told_us = 0, lead_us = 0;
  int64_t rebased_thaw_us = 0;  // last_thaw_us, for Rebase
  auto take = [&](catalog::Consistency level, Samples& into) -> Status {
    std::vector<engine::FreezeTiming> freezes;
    auto s = engine.snapshots().Create(
        {.collection_id = group->collection_id,
         .type = 32768,
         // Told 50 right before the freeze: the guests write for the gap
         // first, less what the previous round took to reach its freeze.
         .progress =
             [&](int percent) {
               if (percent != 50) return;
               const int64_t wait_us =
                   last_thaw_us + a.gap_ms * 1000 - lead_us - Env::Default()->NowMicros();
               if (last_thaw_us > 0 && wait_us > 0) {
                 Env::Default()->SleepFor(std::chrono::microseconds(wait_us));
               }
               told_us = Env::Default()->NowMicros();
             },
         .consistency = level,
         .freeze_timings =
             [&](const std::vector<engine::FreezeTiming>& t) {
               freezes = t;
               int64_t first = INT64_MAX;
               for (const auto& f : t) {
                 last_thaw_us = std::max(last_thaw_us, f.thaw_answered_us);
                 if (f.freeze_sent_us > 0) first = std::min(first, f.freeze_sent_us);
               }
               if (first != INT64_MAX) lead_us = first - told_us;
             }});
    if (!s.ok()) return s.status();
    if (level == catalog::Consistency::kApplication) {
      RoundTimeline round;
      for (size_t i = 0; i < freezes.size() && i < s->members.size(); ++i) {
        const engine::FreezeTiming& f = freezes[i];
        round.guests.push_back({f.freeze_sent_us, f.freeze_answered_us, s->members[i].cut_time_us,
                                f.thaw_sent_us, f.thaw_answered_us});
      }
      Rebase(round, &rebased_thaw_us);
      if (&into == &out.app) out.timelines.push_back(std::move(round));
    }
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

// Round by round: each guest's freeze and thaw durations (ms), and when
// each was frozen and thawed, from the first freeze sent.
void PrintRounds(const char* who, const std::vector<RoundTimeline>& rounds) {
  auto print = [](const char* what, const RoundTimeline& round, auto part) {
    std::printf("%s", what);
    for (const auto& g : round.guests) std::printf(" %.0f", Ms(static_cast<double>(part(g))));
  };
  for (size_t r = 0; r < rounds.size(); ++r) {
    std::printf("%s round %zu: wrote %.0f,", who, r + 1,
                Ms(static_cast<double>(rounds[r].wrote_for)));
    print(" freeze took", rounds[r], [](auto& g) { return g.freeze_answered - g.freeze_sent; });
    print(", frozen at", rounds[r], [](auto& g) { return g.freeze_answered; });
    print(", thaw sent at", rounds[r], [](auto& g) { return g.thaw_sent; });
    print(", thaw took", rounds[r], [](auto& g) { return g.thaw_answered - g.thaw_sent; });
    std::printf("\n");
  }
}

void PrintRow(const char* who, const Samples& s, const char* total) {
  std::printf("%-14s | %8.2f %8.2f | %8.2f %8.2f | %8.1f %8.1f  (%s)\n", who,
              Ms(Median(s.window_us)), Ms(P95(s.window_us)), Ms(Median(s.max_pause_us)),
              Ms(P95(s.max_pause_us)), Ms(Median(s.total_us)), Ms(P95(s.total_us)), total);
}

int Usage() {
  std::fprintf(stderr,
               "usage: app_consistency_bench [--vms N] [--rounds N] [--gap-ms N] [--no-libvirt] "
               "[--json FILE]\n");
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
    else if (arg == "--gap-ms")
      a.gap_ms = std::atoi(next().c_str());
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
  if (a.vms < 1 || a.rounds < 1 || a.gap_ms < 0) return Usage();

  if (a.worker) {  // the unprivileged side, started by RunLibvirtWorker
    std::vector<RoundTimeline> timelines;
    auto r = MeasureLibvirtQuiesced("qemu:///session", a.image_dir, Guest(a), a.vms, a.rounds,
                                    std::chrono::milliseconds(a.gap_ms), &timelines);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    std::printf("%s\n",
                json{{"samples", ToJson(*r)}, {"timelines", ToJson(timelines)}}.dump().c_str());
    return 0;
  }

  auto kit = Env::Default()->Run({GUEST_KIT_BUILD, a.kit}, std::chrono::minutes(5));
  if (!kit.ok() || kit->exit_code != 0) {
    std::fprintf(stderr, "cannot build the guest kit: %s\n",
                 kit.ok() ? kit->err.c_str() : kit.status().ToString().c_str());
    return 1;
  }
  const std::string load_before = HostLoad();
  std::fprintf(stderr, "vmgroup: %d guests, %d rounds each of application and crash...\n", a.vms,
               a.rounds);
  auto ours = MeasureVmgroup(a);
  if (!ours.ok()) {
    std::fprintf(stderr, "vmgroup side failed: %s\n", ours.status().ToString().c_str());
    return 1;
  }
  std::optional<Samples> theirs;
  std::vector<RoundTimeline> their_timelines;
  std::string libvirt_error;
  if (a.libvirt) {
    std::fprintf(stderr, "libvirt: session libvirtd as nobody, the same guests...\n");
    testing::TempDir dir;
    auto out = RunLibvirtWorker(
        Env::Default(), dir.path(),
        {"--libvirt-worker", "--vms", std::to_string(a.vms), "--rounds", std::to_string(a.rounds),
         "--gap-ms", std::to_string(a.gap_ms), "--image-dir", dir / "img"});
    const json j = out.ok() ? json::parse(*out, nullptr, false) : json();
    if (j.is_object() && j.contains("samples") && j.contains("timelines")) {
      theirs = FromJson(j["samples"]);
      their_timelines = TimelinesFromJson(j["timelines"]);
    } else {
      libvirt_error = out.ok() ? "unreadable worker output: " + *out : out.status().ToString();
      std::fprintf(stderr, "libvirt side failed: %s\n", libvirt_error.c_str());
    }
  }
  const std::string load_after = HostLoad();

  std::printf(
      "application-consistent group snapshot of %d guests writing files on ext4, QEMU TCG, "
      "%d rounds each, %d ms of writing before each freeze (ms)\n",
      a.vms, a.rounds, a.gap_ms);
  std::printf(
      "who            | pause window med p95 | 1-VM pause med  p95 | last column med  p95\n");
  PrintRow("vmgroup app", ours->app, "freeze window");
  PrintRow("vmgroup crash", ours->crash, "whole snapshot");
  json report = {{"vms", a.vms},
                 {"rounds", a.rounds},
                 {"gap_ms", a.gap_ms},
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
  std::printf(
      "per guest, ms from the round's first freeze sent (median p95; all frozen and window per "
      "round)\n%s",
      kTimelineHeader);
  PrintTimelineRow("vmgroup app", ours->timelines);
  if (theirs) PrintTimelineRow("libvirt app", their_timelines);
  PrintRounds("vmgroup", ours->timelines);
  if (theirs) PrintRounds("libvirt", their_timelines);
  std::printf("load before: %s\nload after:  %s\n", load_before.c_str(), load_after.c_str());
  report["vmgroup_timelines"] = ToJson(ours->timelines);
  if (theirs) report["libvirt_timelines"] = ToJson(their_timelines);
  report["load_before"] = load_before;
  report["load_after"] = load_after;
  if (theirs) {
    std::printf("target: vmgroup median freeze window <= libvirt's: %.1f vs %.1f ms, %s\n",
                Ms(Median(ours->app.total_us)), Ms(Median(theirs->total_us)),
                Median(ours->app.total_us) <= Median(theirs->total_us) ? "met" : "NOT met");
  }
  std::printf("%s\n", report.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << report.dump(2) << "\n";
  return 0;
}
