// crash_campaign: kills and starves a real vmgroupd at random instants while
// real guests write, and checks after every step that nothing was lost,
// left half-made or left behind (invariants.h). Prints its seed first, so a
// run can be replayed, every violation as it is seen, and its figures at the
// end; exits 1 on any violation, 2 on a wrong command line, 3 when it could
// not set itself up. docs/campaign.md says how to run it and what it found.
//
// One step: a random operation of any kind the state allows, sent through
// the CLI (--no-wait where it has it); in most steps SIGKILL of the daemon
// 0..--max-kill-delay-ms later and a restart (recovery); in --full-disk of
// them the state directory or the export target nearly full (a few MiB
// left) for the step's duration; then the checks.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <random>

#include "backup_listing.h"
#include "daemon_process.h"
#include "fault_injection.h"
#include "invariants.h"
#include "options.h"
#include "reader_process.h"
#include "report.h"
#include "workload.h"

namespace vmgroup::campaign {
namespace {

// Set by SIGINT or SIGTERM: the run ends after the step under way, and
// everything it started is ended as after a normal run.
volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = 1; }

constexpr double kKillChance = 0.8;            // the other steps let the operation finish
constexpr uint64_t kMaxHeadroom = 8ull << 20;  // a full disk keeps 0..8 MiB free

struct Dirs {
  std::string work, state, exports, images, scratch;
};

Result<std::unique_ptr<catalog::Catalog>> OpenCatalog(const Dirs& d) {
  return catalog::Catalog::Open(d.state + "/catalog.db");
}

// The job of a backup session that serves lasts as long as the session
// (services/backup_providers.cc: its type, at 50 % once serving): the step
// is over when the session serves, not when it ends.
bool ServingSession(const catalog::JobRecord& j) {
  constexpr int kJobBackupSession = 32768;
  return j.type == kJobBackupSession && j.state == catalog::JobState::kRunning && j.percent >= 50;
}

bool AnyJobRunning(catalog::Catalog& catalog) {
  auto jobs = catalog.ListJobs();
  if (!jobs.ok()) return false;
  for (const auto& j : *jobs) {
    if (ServingSession(j)) continue;
    if (j.state == catalog::JobState::kNew || j.state == catalog::JobState::kStarting ||
        j.state == catalog::JobState::kRunning) {
      return true;
    }
  }
  return false;
}

// Waits until no job runs; a violation when one still runs after 5 minutes.
Violations AwaitJobs(catalog::Catalog& catalog) {
  const auto deadline = Env::Default()->Now() + std::chrono::minutes(5);
  while (AnyJobRunning(catalog)) {
    if (Env::Default()->Now() > deadline) {
      return {{"job-stuck", "a job still runs 5 minutes after its step"}};
    }
    Env::Default()->SleepFor(std::chrono::milliseconds(100));
  }
  return {};
}

// After a full disk is freed, the campaign asks the guests QEMU paused on
// the I/O error (shown as paused while the catalog says running) to resume.
void ResumeStarved(DaemonProcess& daemon, catalog::Catalog& catalog, const Workload& w) {
  auto listed = daemon.Cli({"--json", "vm", "list"});
  if (!listed.ok() || listed->exit_code != 0) return;
  for (const auto& vm : nlohmann::json::parse(listed->out, nullptr, false)) {
    // "io-error": held by QEMU on the full disk (a paused guest shows as
    // that since the listing tells the two apart).
    const std::string state = vm.is_object() ? vm.value("state", "") : "";
    if (state != "paused" && state != "io-error") continue;
    const std::string id = vm.value("id", "");
    auto rec = catalog.GetVm(id);
    if (w.IsGuest(id) && rec.ok() && rec->power == catalog::Power::kRunning) {
      std::printf("  resuming %s, paused by the full disk\n", id.c_str());
      (void)daemon.Cli({"vm", "resume", id});
    }
  }
}

// A destroy that the full disk cut short part-way leaves its snapshot
// marked for destruction, and its error says to destroy it again (or restart
// the service): once the disk is freed, the campaign does that, as the
// operator would, and the invariants then want the snapshot gone.
void DestroyStarvedAgain(DaemonProcess& daemon, catalog::Catalog& catalog) {
  auto snapshots = catalog.ListSnapshots();
  if (!snapshots.ok()) return;
  for (const auto& s : *snapshots) {
    if (s.state != catalog::SnapshotState::kDestroying) continue;
    std::printf("  destroying %s again, cut short by the full disk\n", s.id.c_str());
    (void)daemon.Cli({"snapshot", "delete", s.id});
  }
}

// A guest found stalled or in a state nobody asked for is stopped and
// started again, and a QEMU no VM should have is ended (by PID: it is in the
// campaign's mount namespace), so that the rest of the run still exercises
// the guests.
void Repair(DaemonProcess& daemon, Invariants& checks, const Violations& found) {
  for (const auto& v : found) {
    if (v.stray_pid > 0) {
      checks.NoteTrackingLost(v.vm_id);  // its bitmaps were never stored
      std::printf("  repairing: ending stray QEMU %d\n", v.stray_pid);
      (void)Env::Default()->Kill(v.stray_pid, SIGKILL);
      (void)Env::Default()->WaitGone(v.stray_pid, std::chrono::seconds(10));
    } else if (v.kind == "vm-stalled" || v.kind == "vm-state-unasked") {
      std::printf("  repairing %s: stop, start\n", v.vm_id.c_str());
      (void)daemon.Cli({"vm", "turn-off", v.vm_id});  // a stalled guest shuts nothing down
      (void)daemon.Cli({"vm", "start", v.vm_id});
    }
  }
}

int RunCampaign(const Options& o, const Dirs& d, DaemonProcess& daemon, Report& report) {
  Workload workload(o, daemon, d.state, d.images, d.exports);
  if (Status s = workload.CreateGuests(); !s.ok()) {
    std::fprintf(stderr, "crash_campaign: setting up the guests: %s\n", s.ToString().c_str());
    return 3;
  }
  DiskFiller state_filler(d.state), export_filler(d.exports);
  Invariants checks(daemon, d.state, d.exports, d.scratch, {state_filler.path()});
  if (Status s = checks.NoteBase(workload.template_path()); !s.ok()) {
    std::fprintf(stderr, "crash_campaign: %s\n", s.ToString().c_str());
    return 3;
  }
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> chance(0, 1);
  int faults_left = o.full_disk;
  for (int step = 1; !g_stop && (report.kills() < o.kills || faults_left > 0); ++step) {
    auto catalog = OpenCatalog(d);
    if (!catalog.ok()) {
      report.Add(step, {{"catalog-unreadable", catalog.status().ToString()}});
      return 1;
    }
    const Operation op = workload.Pick(rng, **catalog);
    const int kills_left = o.kills - report.kills();
    // A backup session lives until the next kill: half the begins are
    // spared it, else a session is seldom left to read (seeds 24 to 26:
    // no read in 200 steps).
    const bool kill =
        kills_left > 0 && chance(rng) < (op.kind == "backup-begin" ? 0.4 : kKillChance);
    const double steps_left = std::max(1.0, kills_left / kKillChance);
    const bool fault = faults_left > 0 && chance(rng) < faults_left / steps_left;
    const auto delay =
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, o.max_kill_delay_ms)(rng));
    const uint64_t headroom = std::uniform_int_distribution<uint64_t>(0, kMaxHeadroom)(rng);
    DiskFiller& filler = op.export_dir.empty() ? state_filler : export_filler;

    std::string line = "step " + std::to_string(step) + ": " + op.kind;
    for (const auto& a : op.reader.empty() ? op.args : op.reader) line += " " + a;
    if (kill) line += " | SIGKILL after " + std::to_string(delay.count()) + " ms";
    if (fault) {
      line += std::string(" | ") + (op.export_dir.empty() ? "state dir" : "export target") +
              " full, " + std::to_string(headroom >> 10) + " KiB left";
      if (Status s = filler.Fill(headroom); !s.ok()) line += " (filler: " + s.ToString() + ")";
      report.FullDisk(op.export_dir.empty() ? "state directory" : "export target");
      --faults_left;
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);

    // A reader of a served disk runs as a child of the campaign's own, by
    // PID; it reads on while the daemon is killed and restarted.
    ReaderProcess reader(d.work + "/reader.log");
    Status reading = op.reader.empty() ? Status::Ok() : reader.Start(op.reader);
    auto sent = std::async(std::launch::async, [&]() -> Result<CommandOutput> {
      if (!op.reader.empty()) return CommandOutput{};
      return daemon.Cli(op.args);
    });
    if (kill) {
      Env::Default()->SleepFor(delay);
      if (Status s = daemon.Kill(); !s.ok()) {
        report.Add(step, {{"daemon-unkillable", s.ToString()}});
        return 1;
      }
      report.Kill();
    }
    const auto answer = sent.get();
    // A whole disk is read in well under a minute; a reader the restart
    // cut off has ended by then too. One the daemon's kill may cut off is
    // counted after the restart.
    const auto finish_reader = [&] {
      if (reading.ok()) reading = reader.Finish(std::chrono::minutes(1));
      report.Operation(op.kind, reading.ok() ? "" : reading.ToString());
    };
    if (!op.reader.empty()) {
      if (!kill) finish_reader();
    } else {
      report.Operation(op.kind, !answer.ok()             ? answer.status().ToString()
                                : answer->exit_code != 0 ? answer->err + answer->out
                                                         : "");
    }
    workload.Sent(op);
    if (!kill) report.Add(step, AwaitJobs(**catalog));
    (void)filler.Release();
    if (fault && (op.kind == "vm-stop" || op.kind == "vm-turn-off")) {
      checks.NoteTrackingLost(op.args[2]);  // the VM
    }
    if (kill) {
      const Invariants::DeadSessions dead = checks.NoteDeadSessions(**catalog);
      if (Status s = daemon.Start(); !s.ok()) {
        report.Add(step, {{"restart-failed", s.ToString()}});
        return 1;
      }
      catalog = OpenCatalog(d);
      if (!catalog.ok()) return 1;
      report.Add(step, checks.JobsEnded(**catalog));
      report.Add(step, AwaitJobs(**catalog));
      report.Add(step, checks.SessionsEnded(**catalog, dead));
      if (!op.reader.empty()) finish_reader();
    }
    if (fault) {
      ResumeStarved(daemon, **catalog, workload);
      DestroyStarvedAgain(daemon, **catalog);
    }
    Violations found = checks.Settled(**catalog, workload.guest_ids());
    report.Add(step, found);
    report.Add(step, checks.Images(**catalog));
    Repair(daemon, checks, found);
  }
  // The end: every session ended and every guest stopped, so its active
  // image is closed and whole.
  if (auto sessions = ListSessions(daemon); sessions.ok()) {
    for (const auto& s : *sessions) (void)daemon.Cli({"backup", "end", s.id});
  }
  auto catalog = OpenCatalog(d);
  if (!catalog.ok()) return 1;
  std::vector<std::string> writing;
  for (const auto& id : workload.guest_ids()) {
    auto vm = (*catalog)->GetVm(id);
    if (vm.ok() && vm->power == catalog::Power::kRunning) writing.push_back(id);
    if (vm.ok() && vm->power != catalog::Power::kOff) (void)daemon.Cli({"vm", "turn-off", id});
  }
  report.Add(-1, checks.AcknowledgedKept(**catalog, writing));
  report.Add(-1, checks.Images(**catalog));
  return report.violations() > 0 ? 1 : 0;
}

}  // namespace
}  // namespace vmgroup::campaign

int main(int argc, char** argv) {
  using namespace vmgroup::campaign;
  auto options = ParseOptions({argv + 1, argv + argc});
  if (!options.ok()) {
    std::fprintf(stderr, "crash_campaign: %s\n%s", options.status().message().c_str(), kUsage);
    return 2;
  }
  const Options& o = *options;
  std::printf(
      "crash_campaign seed=%llu kills=%d full-disk=%d guests=%d (replay with --seed %llu)\n",
      static_cast<unsigned long long>(o.seed), o.kills, o.full_disk, o.guests,
      static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);
#ifdef GUEST_KIT_BUILD
  if (o.guest_kit == GUEST_KIT_DIR) {  // built once, cached in the build folder
    auto kit =
        vmgroup::Env::Default()->Run({GUEST_KIT_BUILD, GUEST_KIT_DIR}, std::chrono::minutes(5));
    if (!kit.ok() || kit->exit_code != 0) {
      std::fprintf(stderr, "crash_campaign: cannot build the guest kit: %s\n",
                   kit.ok() ? kit->err.c_str() : kit.status().ToString().c_str());
      return 3;
    }
  }
#endif
  char tmpl[] = "/tmp/vmg-campaign-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr || ::chmod(tmpl, 0711) != 0) {
    std::perror("crash_campaign: making the work directory");
    return 3;
  }
  Dirs d{tmpl, std::string(tmpl) + "/state", std::string(tmpl) + "/exports",
         std::string(tmpl) + "/images", std::string(tmpl) + "/scratch"};
  for (const auto& dir : {d.state, d.exports, d.images, d.scratch}) {
    std::filesystem::create_directory(dir);
    std::filesystem::permissions(dir, std::filesystem::perms(0711));
  }
  // Before any thread exists (unshare refuses a process with several).
  vmgroup::Status ns = EnterPrivateMountNamespace();
  if (ns.ok()) ns = MountTmpfs(d.state, o.state_mib << 20);
  if (ns.ok()) ns = MountTmpfs(d.exports, o.export_mib << 20);
  if (!ns.ok()) {
    std::fprintf(stderr, "crash_campaign: %s (it needs root)\n", ns.ToString().c_str());
    return 3;
  }
  struct sigaction stop {};
  stop.sa_handler = OnStop;
  ::sigaction(SIGINT, &stop, nullptr);
  ::sigaction(SIGTERM, &stop, nullptr);
  DaemonProcess daemon(o.vmgroupd, o.vmgroup, d.state, d.work + "/d.sock",
                       d.work + "/vmgroupd.log");
  Report report(o.seed);
  int rc = 3;
  if (vmgroup::Status s = daemon.Start(); !s.ok()) {
    std::fprintf(stderr, "crash_campaign: %s\n", s.ToString().c_str());
  } else {
    rc = RunCampaign(o, d, daemon, report);
  }
  (void)daemon.Stop();
  EndQemus();
  report.Print();
  Unmount(d.state);
  Unmount(d.exports);
  if (o.keep || rc != 0) {
    std::printf("work directory kept: %s (the daemon's log: vmgroupd.log)\n", d.work.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(d.work, ec);
  }
  return rc;
}
