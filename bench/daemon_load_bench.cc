// daemon_load_bench: vmgroupd under load. A daemon started here runs a
// group of N firmware-only VMs (two disks each, QEMU under TCG). First K
// group snapshots are taken with nothing else going on; then C clients
// enumerate instances as fast as they can for S seconds (half over the unix
// socket, half over HTTPS on loopback, or plain HTTP with --plain-http,
// rotating through the classes) while group
// snapshots keep being taken; then K more snapshots without load. Prints request latencies and the
// pause windows with and without the load, and exits 1 if any request failed or took longer than
// --max-latency-ms, so CTest runs it as a check too.
//
//   build/bench/daemon_load_bench [--clients 20] [--seconds 30] [--vms 4]
//                                 [--quiet-snapshots 10] [--max-latency-ms 1000]
//                                 [--plain-http]
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "base/env.h"
#include "cli/api.h"
#include "stats.h"
#include "testing/temp_dir.h"
#include "testing/test_certs.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using Ms = std::chrono::milliseconds;

struct Args {
  int clients = 20, seconds = 30, vms = 4, quiet_snapshots = 10;
  int64_t max_latency_ms = 1000;
  bool plain_http = false;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts vmgroupd and returns its pid and TCP port once it is ready; over
// HTTPS with `certs`, else plain HTTP.
bool StartDaemon(const testing::TempDir& dir, const testing::TestCerts* certs, int* pid,
                 int* port) {
  std::vector<std::string> argv = {VMGROUPD_BIN,          "--no-config", "--state-dir",
                                   dir / "state",         "--listen",    "unix:" + (dir / "d.sock"),
                                   "--insecure-loopback", "--accel",     "tcg"};
  if (certs) {
    argv.insert(argv.end(), {"--listen", "https://127.0.0.1:0", "--tls-cert", certs->server_cert,
                             "--tls-key", certs->server_key});
  } else {
    argv.insert(argv.end(), {"--listen", "http://127.0.0.1:0"});
  }
  auto p = Env::Default()->Spawn(argv, {.log_path = dir / "vmgroupd.log", .new_session = false});
  if (!p.ok()) return false;
  *pid = *p;
  for (int i = 0; i < 1000; ++i) {
    std::smatch m;
    const std::string log = ReadAll(dir / "vmgroupd.log");
    if (std::regex_search(log, m, std::regex(R"(listening on https?://127\.0\.0\.1:(\d+))"))) {
      *port = std::stoi(m[1]);
      return true;
    }
    Env::Default()->SleepFor(Ms(10));
  }
  (void)Env::Default()->Kill(*pid, SIGKILL);
  (void)Env::Default()->WaitGone(*pid, std::chrono::seconds(10));
  return false;
}

// Takes one group snapshot and returns its pause window, or -1.
int64_t Snapshot(cli::Api& api, const cli::GroupInfo& g) {
  auto r = api.CreateSnapshot(g, 32768, 2, /*fallback=*/false, "");
  if (!r.ok() || r->code != 4096) return -1;
  auto j = api.WaitJob(r->job_id, nullptr);
  if (!j.ok() || !j->Succeeded()) return -1;
  for (const auto& a : j->affected) {
    if (!a.starts_with("Msvm_SnapshotCollection:")) continue;
    auto s = api.GetSnapshot(cli::AffectedId(a));
    if (s.ok()) return s->pause_window_us;
  }
  return -1;
}

int Run(const Args& a) {
  testing::TempDir dir;
  Result<testing::TestCerts> certs = Status::NotSupported("plain HTTP");
  if (!a.plain_http) {
    certs = testing::MakeTestCerts(dir.path());
    if (!certs.ok()) {
      std::fprintf(stderr, "cannot make test certificates: %s\n",
                   certs.status().ToString().c_str());
      return 1;
    }
  }
  int pid = 0, port = 0;
  if (!StartDaemon(dir, certs.ok() ? &*certs : nullptr, &pid, &port)) {
    std::fprintf(stderr, "vmgroupd did not start:\n%s\n", ReadAll(dir / "vmgroupd.log").c_str());
    return 1;
  }
  const std::string unix_endpoint = "unix:" + (dir / "d.sock");
  const std::string tcp_endpoint =
      (a.plain_http ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port);
  const cim::HttpClient::Options tcp_options{.cacert = certs.ok() ? certs->ca : ""};
  auto api = std::move(cli::Api::Connect(Env::Default(), unix_endpoint)).value();
  int rc = 0;
  std::vector<std::string> vm_ids;
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "daemon_load_bench: %s\n", what.c_str());
    rc = 1;
  };

  // The group.
  auto group_made = api->CreateGroup("load", false);
  for (int i = 0; i < a.vms && rc == 0; ++i) {
    cli::NewVm vm{.name = "vm" + std::to_string(i),
                  .config = {.memory_mib = 64},
                  .disk_paths = {"", ""},
                  .disk_new_bytes = {16 << 20, 16 << 20}};
    auto made = api->CreateVm(vm);
    if (!made.ok() || made->code != 0) {
      fail("cannot create " + vm.name);
      break;
    }
    const std::string id = made->response.Out("ResultingSystem")->value.refs[0].Key("Name")->value;
    vm_ids.push_back(id);
    auto started = api->ChangeVmState(id, 2);
    if (!started.ok() || !api->WaitJob(started->job_id, nullptr)->Succeeded()) fail("cannot start");
  }
  auto group = api->FindGroup("load");
  for (const auto& id : vm_ids) {
    if (rc == 0 && group.ok() && api->AddMember(*group, id)->code != 0) fail("cannot add member");
  }
  if (!group_made.ok() || !group.ok()) fail("cannot create the group");

  std::vector<int64_t> quiet, loaded;
  for (int i = 0; i < a.quiet_snapshots && rc == 0; ++i) {
    const int64_t w = Snapshot(*api, *group);
    if (w < 0) fail("a snapshot without load failed");
    quiet.push_back(w);
  }

  // The load.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> errors{0};
  std::vector<std::vector<int64_t>> latency(static_cast<size_t>(a.clients));
  std::vector<std::thread> clients;
  const char* classes[] = {"Msvm_ComputerSystem", "Msvm_VirtualSystemCollection",
                           "Msvm_SnapshotCollection", "Msvm_ConcreteJob"};
  for (int c = 0; c < a.clients && rc == 0; ++c) {
    clients.emplace_back([&, c] {
      auto http = c % 2 ? cim::HttpClient::Create(tcp_endpoint, tcp_options)
                        : cim::HttpClient::Create(unix_endpoint);
      cim::CimClient client(std::move(http).value(), "root/virtualization/v2");
      for (size_t n = static_cast<size_t>(c); !stop; ++n) {
        const auto t0 = Clock::now();
        auto r = client.EnumerateInstances(classes[n % 4]);
        latency[static_cast<size_t>(c)].push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
        if (!r.ok()) {
          if (errors++ == 0)
            std::fprintf(stderr, "request failed: %s\n", r.status().ToString().c_str());
        }
      }
    });
  }
  const auto load_end = Clock::now() + std::chrono::seconds(a.seconds);
  while (rc == 0 && Clock::now() < load_end) {
    const int64_t w = Snapshot(*api, *group);
    if (w < 0) fail("a snapshot under load failed");
    loaded.push_back(w);
    Env::Default()->SleepFor(Ms(250));  // a chain that grows slowly: 4 snapshots a second
  }
  stop = true;
  for (auto& t : clients) t.join();
  // Quiet again: the same number as before, on the longer chains the loaded
  // phase left, so chain length does not pass for load.
  for (int i = 0; i < a.quiet_snapshots && rc == 0; ++i) {
    const int64_t w = Snapshot(*api, *group);
    if (w < 0) fail("a snapshot without load failed");
    quiet.push_back(w);
  }

  std::vector<int64_t> all;
  for (const auto& l : latency) all.insert(all.end(), l.begin(), l.end());
  const int64_t worst = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  std::printf(
      "vmgroupd under load: %d clients (unix socket and %s) x %d s, group of %d VMs x 2 disks, "
      "QEMU TCG\n",
      a.clients, a.plain_http ? "HTTP" : "HTTPS", a.seconds, a.vms);
  std::printf("requests   %zu (%.0f/s), errors %lld\n", all.size(),
              static_cast<double>(all.size()) / a.seconds, static_cast<long long>(errors.load()));
  std::printf("latency    median %.2f ms  p99 %.2f ms  max %.2f ms\n", Median(all) / 1e3,
              Quantile(all, 0.99) / 1e3, static_cast<double>(worst) / 1e3);
  std::printf(
      "pause window without load: %2zu snapshots (before and after), median %.2f ms  p95 %.2f ms\n",
      quiet.size(), Median(quiet) / 1e3, P95(quiet) / 1e3);
  std::printf(
      "pause window under load:   %2zu snapshots,                   median %.2f ms  p95 %.2f ms\n",
      loaded.size(), Median(loaded) / 1e3, P95(loaded) / 1e3);
  if (!quiet.empty() && !loaded.empty()) {
    std::printf("ratio (under load / without), medians: %.2f\n", Median(loaded) / Median(quiet));
  }
  if (errors > 0) fail(std::to_string(errors.load()) + " requests failed");
  if (worst > a.max_latency_ms * 1000) {
    fail("a request took " + std::to_string(worst / 1000) + " ms, over " +
         std::to_string(a.max_latency_ms) + " ms");
  }

  // Tidy up: VMs off through the daemon, then the daemon, both by PID.
  for (const auto& id : vm_ids) {
    auto r = api->ChangeVmState(id, 3);
    if (r.ok() && r->code == 4096) (void)api->WaitJob(r->job_id, nullptr);
  }
  (void)Env::Default()->Kill(pid, SIGTERM);
  (void)Env::Default()->WaitGone(pid, std::chrono::seconds(30));
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::stoll(argv[++i]) : 0; };
    if (arg == "--clients")
      a.clients = static_cast<int>(next());
    else if (arg == "--seconds")
      a.seconds = static_cast<int>(next());
    else if (arg == "--vms")
      a.vms = static_cast<int>(next());
    else if (arg == "--quiet-snapshots")
      a.quiet_snapshots = static_cast<int>(next());
    else if (arg == "--max-latency-ms")
      a.max_latency_ms = next();
    else if (arg == "--plain-http")
      a.plain_http = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--clients N] [--seconds S] [--vms N] [--quiet-snapshots K] "
                   "[--max-latency-ms MS] [--plain-http]\n",
                   argv[0]);
      return 2;
    }
  }
  return Run(a);
}
