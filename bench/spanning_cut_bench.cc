// A group snapshot across hosts (issue 20), measured against its peer in
// the same run:
//
//  - 3 hosts x 2 VMs: each host a network namespace with a vmgroupd of its
//    own (testing/net_hosts, testing/host_daemon), its VMs in its part of
//    group "app"; snapshotted by the coordinator's protocol
//    (engine/spanning_cut) over HTTPS (remote/cim_cut_host);
//  - the same 3 x 2 by a fifth vmgroupd, their coordinator (--peer), through
//    its CreateSnapshot (`vmgroup snapshot create`), as an operator takes it;
//  - the same 6 VMs' worth on one host: a fourth daemon with 6 VMs in one
//    group, snapshotted by its own CreateSnapshot (`vmgroup snapshot create`),
//    once the group's VMs are stopped (one side's guests at a time).
//
// The group's pause window is the first member paused to the last member
// resumed. Every host here shares this machine's clock, so the window
// across hosts is read exactly from the members' own timings; the
// coordinator's view (first Pause sent to last Resume answered) is printed
// too. Then the coordinator dies: a coordinator process of this program
// pauses every VM under the lease and is SIGKILLed at once; the figure is
// the time from the kill to the last VM seen running again, asked of QEMU
// itself (through the resume guard's monitor, which the host lets go of
// right after it resumes them, retried every 50 ms, one VM after another:
// an overestimate); and how long after its lease's end each host resumed
// its members, as its log says.
//
// --load idle (the default): firmware-only guests (no OS), as in the
// one-host figures of group_snapshot_bench at N = 6. --load seq: every
// guest a Linux guest of the guest kit (tests/guest_kit, 128 MiB) writing
// its sequence of records, one 512-byte O_DIRECT write + fsync after
// another, all the time (group_snapshot_bench's seq load), with its
// guest agent; then application-consistent snapshots are measured too: the
// freeze window (first freeze sent to last thaw answered) of the longest
// host across hosts, against one host's. Root only (network namespaces).
//
//   spanning_cut_bench [--rounds N] [--lease-ms L] [--load idle|seq]
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/ids.h"
#include "base/tied_command.h"
#include "engine/parallel.h"
#include "engine/spanning_cut.h"
#include "host_load.h"
#include "remote/cim_cut_host.h"
#include "report.h"
#include "stats.h"
#include "testing/guest_kit.h"
#include "testing/host_daemon.h"
#include "testing/net_hosts.h"
#include "testing/temp_dir.h"

namespace vmgroup::bench {
namespace {

using testing::HostDaemon;
using testing::NetHost;

constexpr int kHosts = 3;
constexpr int kVmsPerHost = 2;

struct Args {
  int rounds = 7;
  int lease_ms = 500;
  std::string load = "idle";
};

// `vm create` options for `load`'s guests.
std::vector<std::string> VmOptions(const std::string& load) {
  if (load == "idle") return {"--memory", "64", "--disk", "16M"};
  const std::string kit = GUEST_KIT_DIR;
  return {"--memory", "128",
          "--disk",   "64M",
          "--kernel", kit + "/vmlinuz",
          "--initrd", kit + "/initrd.gz",
          "--append", testing::GuestKernelArgs("agent=1 writer=raw")};
}

// Waits until each of `vm_ids` of `d` has written (its console says so).
Status AwaitWriting(const HostDaemon& d, const std::vector<std::string>& vm_ids) {
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  for (const auto& id : vm_ids) {
    while (true) {
      auto text = Env::Default()->ReadFile(d.state_dir() + "/vms/" + id + "/serial.log");
      if (text.ok() && text->find("wrote ") != std::string::npos) break;
      if (Clock::now() > deadline) return Status::Timeout("guest " + id + " never wrote");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return Status::Ok();
}

int64_t NowUs() { return Env::Default()->NowMicros(); }

// "<prefix>0".."<prefix><n-1>".
std::vector<std::string> Names(const std::string& prefix, int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(prefix + std::to_string(i));
  return names;
}

// The coordinator's endpoints as this program passes them to its
// coordinator process: ENDPOINT CA, per host.
std::vector<std::string> EndpointArgs(const std::vector<std::unique_ptr<HostDaemon>>& d) {
  std::vector<std::string> out;
  for (const auto& h : d) out.insert(out.end(), {h->Endpoint(), h->ca()});
  return out;
}

Result<std::vector<std::unique_ptr<remote::CimCutHost>>> Connect(
    const std::vector<std::string>& endpoint_args) {
  std::vector<std::unique_ptr<remote::CimCutHost>> hosts;
  for (size_t i = 0; i + 1 < endpoint_args.size(); i += 2) {
    VMG_ASSIGN_OR_RETURN(
        auto h, remote::CimCutHost::Create(endpoint_args[i], {.cacert = endpoint_args[i + 1],
                                                              .password = HostDaemon::kPassword}));
    hosts.push_back(std::move(h));
  }
  return hosts;
}

// The coordinator that dies: prepares and pauses every host's part, says
// "paused" on stdout, and waits to be killed.
// argv: SNAPSHOT_ID GROUP_ID LEASE_MS (ENDPOINT CA)...
int Coordinate(const std::vector<std::string>& argv) {
  auto hosts = Connect({argv.begin() + 3, argv.end()});
  if (!hosts.ok()) return 1;
  const engine::HostCutRequest part{.collection_id = argv[1], .snapshot_id = argv[0]};
  Status s =
      engine::ParallelFor(hosts->size(), [&](size_t i) { return (*hosts)[i]->Prepare(part); });
  if (s.ok()) {
    s = engine::ParallelFor(hosts->size(), [&](size_t i) {
      return (*hosts)[i]
          ->Pause(part.snapshot_id, std::chrono::milliseconds(std::stoi(argv[2])), /*cut=*/true)
          .status();
    });
  }
  if (!s.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("paused\n");
  std::fflush(stdout);
  while (true) std::this_thread::sleep_for(std::chrono::hours(1));
}

// One way of taking the snapshot across hosts.
struct Spanned {
  Samples samples;  // the window from the members' own timings
  std::vector<int64_t> coordinator_window_us;
  std::vector<int64_t> cut_spread_us;
};

struct Figures {
  Spanned spanning;           // 3 x 2, each host cutting as it pauses
  Spanned spanning_cut_step;  // 3 x 2, a Cut step once all paused
  // 3 x 2 by a vmgroupd coordinating them (`vmgroup snapshot create`):
  // its record's window (first Pause sent -> last Resume answered) and the
  // command's whole time.
  std::vector<int64_t> daemon_window_us, daemon_total_us;
  Samples one_host;  // 6 on one host
  // Application consistent (--load seq): the longest host's freeze window
  // of a snapshot across hosts by the coordinating vmgroupd, and one host's.
  std::vector<int64_t> freeze_across_us, freeze_one_host_us;
  // The coordinator's death: to the last VM seen running (asked of QEMU),
  // and how long after its lease's end the latest host resumed its members
  // (its own word).
  std::vector<int64_t> death_to_running_us, lease_overrun_us;
};

// How late, in microseconds, each lease that ran out in vmgroupd log `log`
// resumed its members, by the host's own word ("... the pause lease ran out
// before resume: members resumed 3 ms after its end").
std::vector<int64_t> LeaseOverruns(const std::string& log) {
  static constexpr std::string_view kSaid =
      "the pause lease ran out before resume: members resumed ";
  std::vector<int64_t> late;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find(kSaid);
    if (at == std::string::npos) continue;
    late.push_back(std::strtoll(line.c_str() + at + kSaid.size(), nullptr, 10) * 1000);
  }
  return late;
}

Result<Figures> Measure(const Args& a, const std::string& self) {
  testing::TempDir dir;
  std::vector<std::unique_ptr<NetHost>> hosts;
  std::vector<std::unique_ptr<HostDaemon>> daemons;
  // Hosts 1-3 the group's, 4 the one-host peer's, 5 the coordinator's.
  for (int i = 1; i <= kHosts + 2; ++i) {
    VMG_ASSIGN_OR_RETURN(auto h, NetHost::Start(Env::Default(), testing::AddressesOf(i)));
    hosts.push_back(std::move(h));
    if (i == kHosts + 2) break;
    VMG_ASSIGN_OR_RETURN(auto d,
                         HostDaemon::Start(*hosts.back(), dir / ("host" + std::to_string(i)),
                                           {.vmgroupd = VMGROUPD_BIN, .vmgroup = VMGROUP_BIN}));
    daemons.push_back(std::move(d));
  }
  // The 3 hosts of the group; the fourth holds the one-host peer.
  std::unique_ptr<HostDaemon> single = std::move(daemons.back());
  daemons.pop_back();
  const std::string group_id = NewGuid();
  const std::vector<std::string> vm_options = VmOptions(a.load);
  std::vector<std::vector<std::string>> vms;
  for (int i = 0; i < kHosts; ++i) {
    VMG_ASSIGN_OR_RETURN(
        auto ids, daemons[i]->MakeGroup(Names("h" + std::to_string(i + 1) + "-", kVmsPerHost),
                                        group_id, vm_options));
    vms.push_back(ids);
  }
  if (a.load != "idle") {
    for (int i = 0; i < kHosts; ++i) VMG_RETURN_IF_ERROR(AwaitWriting(*daemons[i], vms[i]));
  }
  // A vmgroupd of its own coordinating the three: the same group (its id),
  // every member on another host.
  std::map<std::string, const HostDaemon*> peers;
  for (int i = 0; i < kHosts; ++i) peers["h" + std::to_string(i + 1)] = daemons[i].get();
  VMG_ASSIGN_OR_RETURN(auto coordinator_args, HostDaemon::CoordinatorArgs(peers, dir / "peers"));
  VMG_ASSIGN_OR_RETURN(
      auto coordinator,
      HostDaemon::Start(*hosts.back(), dir / "coordinator",
                        {.vmgroupd = VMGROUPD_BIN, .vmgroup = VMGROUP_BIN}, coordinator_args));
  VMG_ASSIGN_OR_RETURN(CommandOutput made,
                       coordinator->Cli({"group", "create", "app", "--id", group_id}));
  if (made.exit_code != 0) return Status::Failed("group create: " + made.err);
  for (int i = 0; i < kHosts; ++i) {
    std::vector<std::string> add = {"group", "add", "app", "--host", "h" + std::to_string(i + 1)};
    add.insert(add.end(), vms[i].begin(), vms[i].end());
    VMG_ASSIGN_OR_RETURN(CommandOutput added, coordinator->Cli(add));
    if (added.exit_code != 0) return Status::Failed("group add: " + added.err);
  }
  const auto endpoints = EndpointArgs(daemons);
  VMG_ASSIGN_OR_RETURN(auto remotes, Connect(endpoints));
  std::vector<engine::CutHost*> cut_hosts;
  for (auto& r : remotes) cut_hosts.push_back(r.get());

  Figures f;
  const auto lease = std::chrono::milliseconds(a.lease_ms);
  for (int round = 0; round < a.rounds; ++round) {
    // Across hosts: each host cutting as it pauses (the default), and with
    // a Cut step once every host has paused.
    for (const bool cut_with_pause : {true, false}) {
      const engine::SpanningCutRequest request{.snapshot_id = NewGuid(),
                                               .collection_id = group_id,
                                               .lease = lease,
                                               .cut_with_pause = cut_with_pause};
      Spanned& into = cut_with_pause ? f.spanning : f.spanning_cut_step;
      const int64_t began = NowUs();
      VMG_ASSIGN_OR_RETURN(auto report,
                           engine::TakeSpanningCut(Env::Default(), cut_hosts, request));
      into.samples.total_us.push_back(NowUs() - began);
      int64_t first = INT64_MAX, last = 0, longest = 0;
      for (const auto& h : report.hosts) {
        for (const auto& t : h.resume.answer.members) {
          first = std::min(first, t.paused_at_us);
          last = std::max(last, t.paused_at_us + t.pause_us);
          longest = std::max(longest, t.pause_us);
        }
      }
      into.samples.window_us.push_back(last - first);
      into.samples.max_pause_us.push_back(longest);
      into.coordinator_window_us.push_back(report.window_us);
      into.cut_spread_us.push_back(report.cut_spread_us);
      for (auto* h : cut_hosts) VMG_RETURN_IF_ERROR(h->Abort(request.snapshot_id));  // destroys it
    }

    // Across hosts, by the coordinating vmgroupd.
    const int64_t daemon_began = NowUs();
    VMG_ASSIGN_OR_RETURN(auto across,
                         coordinator->Json({"snapshot", "create", "app", "--type", "recovery"}));
    f.daemon_total_us.push_back(NowUs() - daemon_began);
    f.daemon_window_us.push_back(across["pause_window_us"].get<int64_t>());
    VMG_ASSIGN_OR_RETURN(CommandOutput gone,
                         coordinator->Cli({"snapshot", "delete", across["id"]}));
    if (gone.exit_code != 0) return Status::Failed("snapshot delete: " + gone.err);
    if (a.load != "idle") {
      VMG_ASSIGN_OR_RETURN(auto frozen,
                           coordinator->Json({"snapshot", "create", "app", "--type", "recovery",
                                              "--consistency", "application"}));
      int64_t longest = 0;
      for (const auto& d : daemons) {
        VMG_ASSIGN_OR_RETURN(auto part, d->Json({"snapshot", "show", frozen["id"]}));
        longest = std::max(longest, part["freeze_window_us"].get<int64_t>());
      }
      f.freeze_across_us.push_back(longest);
      VMG_ASSIGN_OR_RETURN(CommandOutput thawed,
                           coordinator->Cli({"snapshot", "delete", frozen["id"]}));
      if (thawed.exit_code != 0) return Status::Failed("snapshot delete: " + thawed.err);
    }

    // The coordinator's death, every VM paused.
    const std::string id = NewGuid();
    const std::string log = dir / ("coordinator-" + std::to_string(round) + ".log");
    std::vector<std::string> argv = {self, "--coordinate", id, group_id,
                                     std::to_string(a.lease_ms)};
    argv.insert(argv.end(), endpoints.begin(), endpoints.end());
    // Tied to this program: should it die, its coordinator goes too.
    VMG_ASSIGN_OR_RETURN(int pid,
                         Env::Default()->Spawn(TiedToThisProcess(argv), {.log_path = log}));
    const int64_t deadline = NowUs() + 60'000'000;
    std::string said;
    while (said.find("paused") == std::string::npos && NowUs() < deadline &&
           Env::Default()->IsAlive(pid)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      said = ss.str();
    }
    if (said.find("paused") == std::string::npos) {
      (void)Env::Default()->Kill(pid, SIGKILL);
      (void)Env::Default()->WaitGone(pid, std::chrono::seconds(10));
      return Status::Failed("the coordinator did not pause the group: " + said);
    }
    std::vector<size_t> ran_out_before;
    for (int i = 0; i < kHosts; ++i)
      ran_out_before.push_back(LeaseOverruns(daemons[i]->log()).size());
    VMG_RETURN_IF_ERROR(Env::Default()->Kill(pid, SIGKILL));
    const int64_t killed = NowUs();
    VMG_RETURN_IF_ERROR(Env::Default()->WaitGone(pid, std::chrono::seconds(10)));
    for (int i = 0; i < kHosts; ++i) {
      for (const auto& vm : vms[i]) {
        const std::string status = daemons[i]->QemuStatus(vm);
        if (status != "running") return Status::Failed("VM " + vm + " is " + status);
      }
    }
    f.death_to_running_us.push_back(NowUs() - killed);
    int64_t latest = 0;
    for (int i = 0; i < kHosts; ++i) {
      const std::vector<int64_t> late = LeaseOverruns(daemons[i]->log());
      if (late.size() <= ran_out_before[i]) {
        return Status::Failed("host " + std::to_string(i + 1) + " logged no lease running out");
      }
      latest = std::max(latest, late[ran_out_before[i]]);
    }
    f.lease_overrun_us.push_back(latest);
    // Each host undoes its part once the lease ran out; collected here.
    for (auto* h : cut_hosts) VMG_RETURN_IF_ERROR(h->Abort(id));
  }

  // The same number of VMs on one host, the group's VMs stopped first: one
  // side's guests at a time, as group_snapshot_bench runs them. Turned off
  // after a second: firmware guests do not answer the power button.
  for (int i = 0; i < kHosts; ++i) {
    for (const auto& vm : vms[i]) {
      VMG_ASSIGN_OR_RETURN(CommandOutput stopped,
                           daemons[i]->Cli({"vm", "stop", vm, "--timeout", "1", "--force"}));
      if (stopped.exit_code != 0) return Status::Failed("vm stop: " + stopped.err);
    }
  }
  VMG_ASSIGN_OR_RETURN(auto single_vms,
                       single->MakeGroup(Names("one-", kHosts * kVmsPerHost), "", vm_options));
  if (a.load != "idle") VMG_RETURN_IF_ERROR(AwaitWriting(*single, single_vms));
  for (int round = 0; round < a.rounds; ++round) {
    const int64_t one_began = NowUs();
    VMG_ASSIGN_OR_RETURN(auto s, single->Json({"snapshot", "create", "app", "--type", "recovery"}));
    f.one_host.total_us.push_back(NowUs() - one_began);
    f.one_host.window_us.push_back(s["pause_window_us"].get<int64_t>());
    int64_t one_longest = 0;
    for (const auto& m : s["members"])
      one_longest = std::max(one_longest, m["pause_us"].get<int64_t>());
    f.one_host.max_pause_us.push_back(one_longest);
    VMG_ASSIGN_OR_RETURN(CommandOutput deleted, single->Cli({"snapshot", "delete", s["id"]}));
    if (deleted.exit_code != 0) return Status::Failed("snapshot delete: " + deleted.err);
    if (a.load != "idle") {
      VMG_ASSIGN_OR_RETURN(auto frozen, single->Json({"snapshot", "create", "app", "--type",
                                                      "recovery", "--consistency", "application"}));
      f.freeze_one_host_us.push_back(frozen["freeze_window_us"].get<int64_t>());
      VMG_ASSIGN_OR_RETURN(CommandOutput thawed, single->Cli({"snapshot", "delete", frozen["id"]}));
      if (thawed.exit_code != 0) return Status::Failed("snapshot delete: " + thawed.err);
    }
  }
  return f;
}

int Usage() {
  std::fprintf(stderr, "usage: spanning_cut_bench [--rounds N] [--lease-ms L] [--load idle|seq]\n");
  return 2;
}

}  // namespace
}  // namespace vmgroup::bench

int main(int argc, char** argv) {
  using namespace vmgroup::bench;
  if (argc >= 2 && std::string(argv[1]) == "--coordinate") {
    return Coordinate({argv + 2, argv + argc});
  }
  Args a;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) return Usage();
    const std::string flag = argv[i];
    if (flag == "--rounds") {
      a.rounds = std::stoi(argv[i + 1]);
    } else if (flag == "--lease-ms") {
      a.lease_ms = std::stoi(argv[i + 1]);
    } else if (flag == "--load") {
      a.load = argv[i + 1];
    } else {
      return Usage();
    }
  }
  if (a.rounds < 1 || a.lease_ms < 1 || (a.load != "idle" && a.load != "seq")) return Usage();
  // The guest kit is built while this program can still reach Debian's
  // archive: not from inside its private network.
  if (a.load != "idle") {
    auto kit =
        vmgroup::Env::Default()->Run({GUEST_KIT_BUILD, GUEST_KIT_DIR}, std::chrono::minutes(5));
    if (!kit.ok() || kit->exit_code != 0) {
      std::fprintf(stderr, "spanning_cut_bench: cannot build the guest kit\n");
      return 1;
    }
  }
  // Before any thread: the kernel moves the calling thread alone.
  if (vmgroup::Status s = vmgroup::testing::EnterPrivateNetwork(vmgroup::Env::Default()); !s.ok()) {
    std::fprintf(stderr, "spanning_cut_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  const std::string load_before = HostLoad();
  auto f = Measure(a, argv[0]);
  const std::string load_after = HostLoad();
  if (!f.ok()) {
    std::fprintf(stderr, "spanning_cut_bench: %s\n", f.status().ToString().c_str());
    return 1;
  }
  std::printf("load before: %s\nload after:  %s\n", load_before.c_str(), load_after.c_str());
  std::printf("%d hosts x %d VMs (%s, TCG), %d rounds, lease %d ms\n", kHosts, kVmsPerHost,
              a.load == "idle" ? "firmware guests" : "Linux guests writing records", a.rounds,
              a.lease_ms);
  std::printf("%s", kRowHeader);
  PrintRow("3x2", kHosts * kVmsPerHost, f->spanning.samples);
  PrintRow("3x2 cut", kHosts * kVmsPerHost, f->spanning_cut_step.samples);
  PrintRow("1x6", kHosts * kVmsPerHost, f->one_host);
  std::printf(
      "(3x2: each host cuts as it pauses; 3x2 cut: a Cut step once every host paused; "
      "1x6: the same number of VMs in one group on one host)\n");
  for (const auto& [who, s] : {std::pair<const char*, const Spanned*>{"3x2", &f->spanning},
                               {"3x2 cut", &f->spanning_cut_step}}) {
    std::printf(
        "%-7s window / one host's: %.2f (medians); coordinator's window (first Pause sent "
        "-> last Resume answered) %.2f ms median, %.2f p95; cut spread bound %.2f ms "
        "median, %.2f p95\n",
        who, Median(s->samples.window_us) / Median(f->one_host.window_us),
        Ms(Median(s->coordinator_window_us)), Ms(P95(s->coordinator_window_us)),
        Ms(Median(s->cut_spread_us)), Ms(P95(s->cut_spread_us)));
  }
  std::printf(
      "3x2 by a vmgroupd coordinator (snapshot create): window (first Pause sent -> last "
      "Resume answered) %.2f ms median, %.2f p95; the command %.1f ms median, %.1f p95\n",
      Ms(Median(f->daemon_window_us)), Ms(P95(f->daemon_window_us)), Ms(Median(f->daemon_total_us)),
      Ms(P95(f->daemon_total_us)));
  std::printf(
      "coordinator SIGKILLed, every VM paused -> last VM running: %.1f ms median, %.1f "
      "p95 (lease %d ms); the latest host resumed its members %.1f ms after the lease's end "
      "(median; %.1f p95; its own word, in whole ms)\n",
      Ms(Median(f->death_to_running_us)), Ms(P95(f->death_to_running_us)), a.lease_ms,
      Ms(Median(f->lease_overrun_us)), Ms(P95(f->lease_overrun_us)));
  if (!f->freeze_across_us.empty()) {
    std::printf(
        "application consistent, freeze window (first freeze sent -> last thaw answered): "
        "3x2 longest host's %.1f ms median, %.1f p95; 1x6 %.1f ms median, %.1f p95; ratio "
        "%.2f (medians)\n",
        Ms(Median(f->freeze_across_us)), Ms(P95(f->freeze_across_us)),
        Ms(Median(f->freeze_one_host_us)), Ms(P95(f->freeze_one_host_us)),
        Median(f->freeze_across_us) / Median(f->freeze_one_host_us));
  }
  return 0;
}
