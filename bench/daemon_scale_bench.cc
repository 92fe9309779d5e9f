// daemon_scale_bench: vmgroupd at scale (issue 19, item 3, the daemon's
// side). A daemon started here defines V firmware-only VMs (one disk each,
// QEMU under TCG) in groups of G, runs R of them (whole groups; the others
// stay off, so 2 cores carry them) and takes S group snapshots spread over
// the groups (disk-only, crash consistent; a group that is off is cut
// offline, its commit being its cut), then one reference point per group.
// It prints:
//  - the daemon's RSS, threads and CPU time (/proc/PID/stat and status)
//    idle with no VM, with the V VMs, after the S snapshots and after the
//    listings, and the CPU per group snapshot and per member;
//  - how long building the catalog took;
//  - every listing a client makes (the requests behind `vmgroup vm list`,
//    `group list`, `snapshot list`, `job list`, `refpoint list`, and the
//    GetInstance and association requests `job wait` and `group list` make),
//    each repeated, median, p95 and max per request kind, against the target
//    of no request over 100 ms; exits 1 if one is over --max-request-ms.
//    The largest, the settings' listing, is also taken apart: its HTTP
//    exchange alone (the daemon's work and the transfer) and the client's
//    parsing of its answer.
//
//   build/bench/daemon_scale_bench [--vms 64] [--group-size 4] [--running 16]
//                                  [--snapshots 1000] [--rounds 20] [--workers 4]
//                                  [--max-request-ms 100]
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "base/env.h"
#include "cli/api.h"
#include "host_load.h"
#include "schema/classes.h"
#include "schema/values.h"
#include "stats.h"
#include "testing/temp_dir.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using Ms = std::chrono::milliseconds;

struct Args {
  int vms = 64, group_size = 4, running = 16, snapshots = 1000, rounds = 20, workers = 4;
  int64_t max_request_ms = 100;
};

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What /proc says of one process: its own CPU time, that of the children it
// has reaped (qemu-img runs, not the QEMUs, which outlive it), RSS and
// threads.
struct ProcSample {
  double cpu_s = 0, children_cpu_s = 0;
  int64_t rss_kib = 0, hwm_kib = 0, threads = 0;
};

int64_t StatusField(const std::string& status, const std::string& name) {
  const size_t at = status.find("\n" + name + ":");
  return at == std::string::npos ? 0 : std::atoll(status.c_str() + at + name.size() + 2);
}

ProcSample Sample(int pid) {
  ProcSample s;
  const std::string stat = FileText("/proc/" + std::to_string(pid) + "/stat");
  // Fields after the command name, which ends at the last ')': state is
  // field 3, utime 14, stime 15, cutime 16, cstime 17.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f(16);
  for (auto& x : f) rest >> x;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (!f[15].empty()) {
    s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / tick;
    s.children_cpu_s = (std::stod(f[13]) + std::stod(f[14])) / tick;
  }
  const std::string status = "\n" + FileText("/proc/" + std::to_string(pid) + "/status");
  s.rss_kib = StatusField(status, "VmRSS");
  s.hwm_kib = StatusField(status, "VmHWM");
  s.threads = StatusField(status, "Threads");
  return s;
}

void PrintSample(const char* what, const ProcSample& s) {
  std::printf("  %-34s RSS %7.1f MiB (peak %7.1f)  threads %4lld  CPU %7.2f s (+ reaped %6.2f s)\n",
              what, static_cast<double>(s.rss_kib) / 1024, static_cast<double>(s.hwm_kib) / 1024,
              static_cast<long long>(s.threads), s.cpu_s, s.children_cpu_s);
}

// The processes whose parent is `pid`: the QEMUs a daemon started, ended by
// PID if the daemon cannot stop them itself.
std::vector<int> ChildrenOf(int pid) {
  std::vector<int> out;
  std::istringstream tasks(
      FileText("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
  for (int child; tasks >> child;) out.push_back(child);
  return out;
}

// Starts vmgroupd on a unix socket only and returns its pid once it answers.
Result<int> StartDaemon(const testing::TempDir& dir, const std::string& endpoint) {
  VMG_ASSIGN_OR_RETURN(
      int pid, Env::Default()->Spawn({VMGROUPD_BIN, "--no-config", "--state-dir", dir / "state",
                                      "--listen", endpoint, "--accel", "tcg"},
                                     {.log_path = dir / "vmgroupd.log", .new_session = false}));
  for (int i = 0; i < 1000; ++i) {
    auto api = cli::Api::Connect(Env::Default(), endpoint);
    if (api.ok() && (*api)->GetHost().ok()) return pid;
    Env::Default()->SleepFor(Ms(10));
  }
  (void)Env::Default()->Kill(pid, SIGKILL);
  (void)Env::Default()->WaitGone(pid, std::chrono::seconds(10));
  return Status::Unavailable("vmgroupd did not answer:\n" + FileText(dir / "vmgroupd.log"));
}

// Runs a job-starting call and waits for its job; the error says `what`.
Status RunJob(cli::Api& api, const Result<cli::CallResult>& r, const std::string& what) {
  if (!r.ok()) return Status::Failed(what + ": " + r.status().ToString());
  if (r->code == 0) return Status::Ok();
  if (r->code != 4096)
    return Status::Failed(what + ": code " + std::to_string(r->code) + " " + r->error);
  auto j = api.WaitJob(r->job_id, nullptr);
  if (!j.ok()) return Status::Failed(what + ": " + j.status().ToString());
  if (!j->Succeeded()) return Status::Failed(what + ": job " + j->error);
  return Status::Ok();
}

// Runs `work(i)` for i in [0, n) on `workers` threads, each with its own
// connection; the first error wins.
Status InParallel(const std::string& endpoint, int workers, int n,
                  const std::function<Status(cli::Api&, int)>& work) {
  std::atomic<int> next{0};
  std::mutex mu;
  Status first;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      auto api = cli::Api::Connect(Env::Default(), endpoint);
      for (int i; (i = next++) < n;) {
        Status s = api.ok() ? work(**api, i) : api.status();
        std::lock_guard<std::mutex> l(mu);
        if (!s.ok() && first.ok()) first = s;
        if (!first.ok()) next = n;
      }
    });
  }
  for (auto& t : threads) t.join();
  return first;
}

// One kind of request a listing makes, timed `rounds` times.
struct RequestKind {
  std::string name;
  std::function<Result<size_t>()> run;  // how many instances came back
  bool part = false;                    // of a request: not held to the target
  std::vector<int64_t> us;
  size_t instances = 0;
};

class Bench {
 public:
  explicit Bench(const Args& a) : a_(a), endpoint_("unix:" + (dir_ / "d.sock")) {}
  ~Bench() { TidyUp(); }

  Status Run();

 private:
  Status Define();
  Status BuildSnapshots();
  Status MeasureListings();
  void TidyUp();

  cli::Api& api() { return *api_; }

  const Args a_;
  testing::TempDir dir_;
  const std::string endpoint_;
  int pid_ = 0;
  std::unique_ptr<cli::Api> api_;
  std::vector<std::string> vm_ids_;
  std::vector<cli::GroupInfo> groups_;
  std::vector<bool> group_running_;
  int64_t worst_us_ = 0;
};

Status Bench::Define() {
  const int n_groups = a_.vms / a_.group_size;
  auto t0 = Clock::now();
  vm_ids_.resize(static_cast<size_t>(a_.vms));
  VMG_RETURN_IF_ERROR(InParallel(endpoint_, a_.workers, a_.vms, [&](cli::Api& api, int i) {
    cli::NewVm vm{.name = "vm" + std::to_string(i),
                  .config = {.memory_mib = 64},
                  .disk_paths = {""},
                  .disk_new_bytes = {16 << 20}};
    auto made = api.CreateVm(vm);
    if (!made.ok() || made->code != 0) return Status::Failed("cannot define " + vm.name);
    vm_ids_[static_cast<size_t>(i)] =
        made->response.Out("ResultingSystem")->value.refs[0].Key("Name")->value;
    return Status::Ok();
  }));
  for (int g = 0; g < n_groups; ++g) {
    const std::string name = "g" + std::to_string(g);
    VMG_RETURN_IF_ERROR(RunJob(api(), api().CreateGroup(name, false), "create group " + name));
    VMG_ASSIGN_OR_RETURN(cli::GroupInfo group, api().FindGroup(name));
    for (int m = 0; m < a_.group_size; ++m) {
      const std::string& id = vm_ids_[static_cast<size_t>(g * a_.group_size + m)];
      VMG_RETURN_IF_ERROR(RunJob(api(), api().AddMember(group, id), "add member"));
    }
    groups_.push_back(group);
    group_running_.push_back(g * a_.group_size < a_.running);
  }
  std::printf("defined %d VMs in %d groups of %d: %.1f s\n", a_.vms, n_groups, a_.group_size,
              SecondsSince(t0));
  t0 = Clock::now();
  const int running = std::min(a_.running, n_groups * a_.group_size);
  VMG_RETURN_IF_ERROR(InParallel(endpoint_, a_.workers, running, [&](cli::Api& api, int i) {
    return RunJob(api, api.ChangeVmState(vm_ids_[static_cast<size_t>(i)], 2), "start a VM");
  }));
  std::printf("started %d of them (whole groups; the rest stay off): %.1f s\n", running,
              SecondsSince(t0));
  return Status::Ok();
}

Status Bench::BuildSnapshots() {
  const int n_groups = static_cast<int>(groups_.size());
  // Snapshots of running groups first, then of groups that are off: their
  // CPU apart.
  for (bool running : {true, false}) {
    std::vector<int> jobs;  // the group of each snapshot to take
    for (int k = 0; k < a_.snapshots; ++k) {
      if (group_running_[static_cast<size_t>(k % n_groups)] == running)
        jobs.push_back(k % n_groups);
    }
    if (jobs.empty()) continue;
    const ProcSample before = Sample(pid_);
    const auto t0 = Clock::now();
    // One worker per group at a time: a group takes one operation at once.
    std::vector<std::vector<int>> per_group(static_cast<size_t>(n_groups));
    for (int g : jobs) per_group[static_cast<size_t>(g)].push_back(g);
    std::vector<int> group_ids;
    for (int g = 0; g < n_groups; ++g) {
      if (!per_group[static_cast<size_t>(g)].empty()) group_ids.push_back(g);
    }
    VMG_RETURN_IF_ERROR(InParallel(
        endpoint_, a_.workers, static_cast<int>(group_ids.size()), [&](cli::Api& api, int i) {
          const int g = group_ids[static_cast<size_t>(i)];
          Status s;
          for (size_t k = 0; k < per_group[static_cast<size_t>(g)].size() && s.ok(); ++k) {
            s = RunJob(
                api,
                api.CreateSnapshot(groups_[static_cast<size_t>(g)], schema::SnapshotType::kDiskOnly,
                                   schema::ConsistencyLevel::kCrash, false, ""),
                "snapshot of group " + groups_[static_cast<size_t>(g)].name);
          }
          return s;
        }));
    const double wall = SecondsSince(t0);
    const ProcSample after = Sample(pid_);
    const double cpu_ms = (after.cpu_s - before.cpu_s) * 1e3 / static_cast<double>(jobs.size());
    const double reaped_ms =
        (after.children_cpu_s - before.children_cpu_s) * 1e3 / static_cast<double>(jobs.size());
    std::printf(
        "%4zu snapshots of %s groups: %.1f s (%.0f ms each, %d workers); daemon CPU %.1f ms per "
        "group snapshot, %.2f ms per member (+ reaped qemu-img %.1f ms, %.2f per member)\n",
        jobs.size(), running ? "running" : "off", wall,
        wall * 1e3 / static_cast<double>(jobs.size()), a_.workers, cpu_ms, cpu_ms / a_.group_size,
        reaped_ms, reaped_ms / a_.group_size);
  }
  const auto t0 = Clock::now();
  VMG_RETURN_IF_ERROR(InParallel(endpoint_, a_.workers, n_groups, [&](cli::Api& api, int g) {
    return RunJob(api, api.CreateRefPoint(groups_[static_cast<size_t>(g)], "rp"),
                  "reference point of group " + groups_[static_cast<size_t>(g)].name);
  }));
  std::printf("%d reference points (one per group): %.1f s\n", n_groups, SecondsSince(t0));
  return Status::Ok();
}

Status Bench::MeasureListings() {
  auto http = cim::HttpClient::Create(endpoint_);
  if (!http.ok()) return http.status();
  cim::CimClient cim(std::move(http).value(), schema::kNamespace);
  auto count = [](const Result<std::vector<cim::NamedInstance>>& r) -> Result<size_t> {
    if (!r.ok()) return r.status();
    return r->size();
  };
  std::vector<RequestKind> kinds;
  auto enumerate = [&](const std::string& cls) {
    kinds.push_back({"EnumerateInstances " + cls,
                     [&cim, &count, cls] { return count(cim.EnumerateInstances(cls)); }});
  };
  // vm list; group list; snapshot list; job list; refpoint list.
  for (const char* cls :
       {schema::ComputerSystem::kClass, schema::VirtualSystemSettingData::kClass,
        schema::VirtualSystemCollection::kClass, schema::ManagementCollection::kClass,
        schema::SnapshotCollection::kClass, schema::ConcreteJob::kClass,
        schema::ReferencePointCollection::kClass, schema::VirtualSystemReferencePoint::kClass}) {
    enumerate(cls);
  }
  // The largest listing taken apart: the HTTP exchange alone (the daemon's
  // work and the transfer; the instances counted, not read) and the
  // client's parsing of that answer into instances.
  VMG_ASSIGN_OR_RETURN(auto raw, cim::HttpClient::Create(endpoint_));
  const std::string settings_call = cim::IMethodCall(
      "1", "EnumerateInstances", cim.namespace_parts(),
      {{"ClassName", "",
        cim::Value::Reference({"", {}, schema::VirtualSystemSettingData::kClass, {}})}});
  auto post_settings = [&raw, &settings_call]() -> Result<cim::HttpResponse> {
    VMG_ASSIGN_OR_RETURN(cim::HttpResponse reply,
                         raw->Post("/cimom",
                                   {{"Content-Type", "application/xml; charset=\"utf-8\""},
                                    {"CIMProtocolVersion", "1.0"},
                                    {"CIMOperation", "MethodCall"},
                                    {"CIMMethod", "EnumerateInstances"},
                                    {"CIMObject", schema::kNamespace}},
                                   settings_call, Ms(60'000)));
    if (reply.status != 200) return Status::Failed("HTTP " + std::to_string(reply.status));
    return reply;
  };
  VMG_ASSIGN_OR_RETURN(const cim::HttpResponse settings_answer, post_settings());
  kinds.push_back({"  of it: the HTTP exchange alone",
                   [&post_settings]() -> Result<size_t> {
                     VMG_ASSIGN_OR_RETURN(cim::HttpResponse reply, post_settings());
                     size_t n = 0;
                     for (size_t at = 0;
                          (at = reply.body.find("<VALUE.NAMEDINSTANCE>", at)) != std::string::npos;
                          ++at) {
                       ++n;
                     }
                     return n;
                   },
                   true});
  kinds.push_back({"  of it: the client's parsing",
                   [&settings_answer]() -> Result<size_t> {
                     VMG_ASSIGN_OR_RETURN(cim::Response r,
                                          cim::ParseResponse(settings_answer.body));
                     return r.instances.size();
                   },
                   true});
  // One of each object the CLI then reads by itself: a group's members
  // (group list), a job and what it made (job wait), a VM's snapshots.
  VMG_ASSIGN_OR_RETURN(auto groups,
                       cim.EnumerateInstances(schema::VirtualSystemCollection::kClass));
  VMG_ASSIGN_OR_RETURN(auto jobs, cim.EnumerateInstances(schema::ConcreteJob::kClass));
  VMG_ASSIGN_OR_RETURN(auto vms, cim.EnumerateInstances(schema::ComputerSystem::kClass));
  if (groups.empty() || jobs.empty() || vms.empty()) return Status::Failed("nothing to list");
  const cim::ObjectPath group = groups[0].path, job = jobs.back().path, vm = vms[0].path;
  kinds.push_back({"Associators group CollectedVirtualSystems", [&cim, &count, group] {
                     return count(
                         cim.Associators(group, schema::CollectedVirtualSystems::kClass, ""));
                   }});
  kinds.push_back({"GetInstance job", [&cim, job]() -> Result<size_t> {
                     VMG_RETURN_IF_ERROR(cim.GetInstance(job).status());
                     return 1;
                   }});
  kinds.push_back({"Associators job AffectedJobElement", [&cim, &count, job] {
                     return count(cim.Associators(job, schema::AffectedJobElement::kClass, ""));
                   }});
  kinds.push_back({"Associators VM SnapshotOfVirtualSystem", [&cim, &count, vm] {
                     return count(cim.Associators(vm, schema::SnapshotOfVirtualSystem::kClass, ""));
                   }});

  // The CLI's list commands end to end (several requests each).
  std::vector<std::pair<std::string, std::function<Status()>>> commands = {
      {"vm list", [&] { return api().ListVms().status(); }},
      {"group list", [&] { return api().ListGroups().status(); }},
      {"snapshot list", [&] { return api().ListSnapshots("").status(); }},
      {"job list", [&] { return api().ListJobs().status(); }},
      {"refpoint list", [&] { return api().ListRefPoints("").status(); }}};
  std::vector<std::vector<int64_t>> command_us(commands.size());

  for (int r = 0; r < a_.rounds; ++r) {
    for (auto& k : kinds) {
      const auto t0 = Clock::now();
      auto n = k.run();
      k.us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
      if (!n.ok()) return Status::Failed(k.name + ": " + n.status().ToString());
      k.instances = *n;
    }
    for (size_t c = 0; c < commands.size(); ++c) {
      const auto t0 = Clock::now();
      VMG_RETURN_IF_ERROR(commands[c].second());
      command_us[c].push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    }
  }
  std::printf("requests, %d rounds each (ms)        instances   median      p95      max\n",
              a_.rounds);
  for (const auto& k : kinds) {
    const int64_t max = *std::max_element(k.us.begin(), k.us.end());
    if (!k.part) worst_us_ = std::max(worst_us_, max);
    std::printf("  %-52s %6zu %8.2f %8.2f %8.2f\n", k.name.c_str(), k.instances, Median(k.us) / 1e3,
                P95(k.us) / 1e3, static_cast<double>(max) / 1e3);
  }
  std::printf(
      "CLI list commands end to end (ms; several requests each, and the client's parsing)\n");
  for (size_t c = 0; c < commands.size(); ++c) {
    const auto& us = command_us[c];
    std::printf("  %-59s %8.2f %8.2f %8.2f\n", commands[c].first.c_str(), Median(us) / 1e3,
                P95(us) / 1e3, static_cast<double>(*std::max_element(us.begin(), us.end())) / 1e3);
  }
  std::printf("slowest request %.2f ms; target: none over %lld ms: %s\n",
              static_cast<double>(worst_us_) / 1e3, static_cast<long long>(a_.max_request_ms),
              worst_us_ <= a_.max_request_ms * 1000 ? "met" : "NOT MET");
  return Status::Ok();
}

Status Bench::Run() {
  std::printf("load before: %s\n", HostLoad().c_str());
  VMG_ASSIGN_OR_RETURN(pid_, StartDaemon(dir_, endpoint_));
  VMG_ASSIGN_OR_RETURN(api_, cli::Api::Connect(Env::Default(), endpoint_));
  Env::Default()->SleepFor(Ms(1000));
  std::printf(
      "vmgroupd at scale: %d VMs (firmware only, 64 MiB, 1 disk, QEMU TCG) in groups of %d, "
      "%d running; %d group snapshots\n",
      a_.vms, a_.group_size, a_.running, a_.snapshots);
  std::vector<std::pair<std::string, ProcSample>> samples;
  samples.emplace_back("idle, no VM", Sample(pid_));
  VMG_RETURN_IF_ERROR(Define());
  Env::Default()->SleepFor(Ms(2000));
  samples.emplace_back(std::to_string(a_.vms) + " VMs, " + std::to_string(a_.running) + " running",
                       Sample(pid_));
  VMG_RETURN_IF_ERROR(BuildSnapshots());
  samples.emplace_back("after " + std::to_string(a_.snapshots) + " snapshots", Sample(pid_));
  VMG_RETURN_IF_ERROR(MeasureListings());
  samples.emplace_back("after the listings", Sample(pid_));
  std::printf("the daemon (vmgroupd itself; QEMUs are processes of their own)\n");
  for (const auto& [what, s] : samples) PrintSample(what.c_str(), s);
  const ProcSample& idle = samples[0].second;
  const ProcSample& loaded = samples[2].second;
  std::printf("  per VM: RSS %.1f KiB, %.2f threads (from idle to after the snapshots)\n",
              static_cast<double>(loaded.rss_kib - idle.rss_kib) / a_.vms,
              static_cast<double>(loaded.threads - idle.threads) / a_.vms);
  std::printf("load after: %s\n", HostLoad().c_str());
  return worst_us_ <= a_.max_request_ms * 1000
             ? Status::Ok()
             : Status::Failed("a request took over " + std::to_string(a_.max_request_ms) + " ms");
}

// VMs off through the daemon, any QEMU left ended by PID, then the daemon
// by PID: also after a failure.
void Bench::TidyUp() {
  if (pid_ == 0) return;
  if (api_) {
    (void)InParallel(endpoint_, a_.workers, static_cast<int>(vm_ids_.size()),
                     [&](cli::Api& api, int i) {
                       if (vm_ids_[static_cast<size_t>(i)].empty()) return Status::Ok();
                       auto r = api.ChangeVmState(vm_ids_[static_cast<size_t>(i)], 3);
                       if (r.ok() && r->code == 4096) (void)api.WaitJob(r->job_id, nullptr);
                       return Status::Ok();
                     });
  }
  for (int child : ChildrenOf(pid_)) {
    (void)Env::Default()->Kill(child, SIGKILL);
    (void)Env::Default()->WaitGone(child, std::chrono::seconds(10));
  }
  (void)Env::Default()->Kill(pid_, SIGTERM);
  if (!Env::Default()->WaitGone(pid_, std::chrono::seconds(30)).ok()) {
    (void)Env::Default()->Kill(pid_, SIGKILL);
    (void)Env::Default()->WaitGone(pid_, std::chrono::seconds(10));
  }
  pid_ = 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each phase shows as it ends
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::stoll(argv[++i]) : 0; };
    if (arg == "--vms")
      a.vms = static_cast<int>(next());
    else if (arg == "--group-size")
      a.group_size = static_cast<int>(next());
    else if (arg == "--running")
      a.running = static_cast<int>(next());
    else if (arg == "--snapshots")
      a.snapshots = static_cast<int>(next());
    else if (arg == "--rounds")
      a.rounds = static_cast<int>(next());
    else if (arg == "--workers")
      a.workers = static_cast<int>(next());
    else if (arg == "--max-request-ms")
      a.max_request_ms = next();
    else {
      std::fprintf(stderr,
                   "usage: %s [--vms N] [--group-size G] [--running R] [--snapshots S] "
                   "[--rounds K] [--workers W] [--max-request-ms MS]\n",
                   argv[0]);
      return 2;
    }
  }
  if (a.group_size < 1 || a.vms < a.group_size || a.rounds < 1 || a.workers < 1) return 2;
  Status s = Bench(a).Run();
  if (!s.ok()) {
    std::fprintf(stderr, "daemon_scale_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
