#include "libvirt_side.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <barrier>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "report.h"
#include "storage/qemu_img.h"
#include "testing/tiny_vms.h"

namespace vmgroup::bench {
namespace {

namespace fs = std::filesystem;

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

Status LibvirtError(const std::string& what) {
  const char* msg = virGetLastErrorMessage();
  return Status::Failed(what + ": " + (msg ? msg : "unknown libvirt error"));
}

std::string DomainXml(const std::string& name, const std::vector<std::string>& disks,
                      const GuestSpec* guest = nullptr) {
  std::string xml = "<domain type='qemu'><name>" + name + "</name><memory unit='MiB'>" +
                    std::to_string(guest ? guest->memory_mib : 64) +
                    "</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type>";
  if (guest) {
    xml += "<kernel>" + guest->kernel + "</kernel><initrd>" + guest->initrd + "</initrd><cmdline>" +
           guest->cmdline + "</cmdline>";
  }
  xml += "</os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>";
  for (size_t i = 0; i < disks.size(); ++i) {
    xml += "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" +
           disks[i] + "'/><target dev='vd" + std::string(1, static_cast<char>('a' + i)) +
           "' bus='virtio'/></disk>";
  }
  if (guest) xml += "<serial type='file'><source path='" + disks[0] + ".serial'/></serial>";
  if (guest && guest->agent) {
    xml +=
        "<channel type='unix'><source mode='bind'/>"
        "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>";
  }
  return xml + "<memballoon model='none'/></devices></domain>";
}

std::string SnapshotXml(const std::string& name, const std::vector<std::string>& files,
                        const std::string& memory_file = "") {
  std::string xml = "<domainsnapshot><name>" + name + "</name>";
  if (!memory_file.empty()) xml += "<memory snapshot='external' file='" + memory_file + "'/>";
  xml += "<disks>";
  for (size_t i = 0; i < files.size(); ++i) {
    xml += "<disk name='vd" + std::string(1, static_cast<char>('a' + i)) +
           "' snapshot='external'><source file='" + files[i] + "'/></disk>";
  }
  return xml + "</disks></domainsnapshot>";
}

// Ends every domain that started.
void DestroyAll(std::vector<ScriptDomain>& doms) {
  for (auto& d : doms) {
    if (d.dom) {
      virDomainDestroy(d.dom);
      virDomainFree(d.dom);
    }
  }
}

// Waits until the serial log of every domain shows `marker`.
Status WaitForMarker(const std::vector<ScriptDomain>& doms, const std::string& marker) {
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  for (const auto& d : doms) {
    while (true) {
      auto text = Env::Default()->ReadFile(d.disks[0] + ".serial");
      if (text.ok() && text->find(marker) != std::string::npos) break;
      if (Clock::now() > deadline) return Status::Timeout(d.name + " never printed " + marker);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return Status::Ok();
}

// Waits until libvirt says each domain's guest agent is connected (its
// channel's state in the live XML): a guest that printed its marker may
// still be unknown to libvirt's agent monitor for a moment.
Status WaitForAgents(const std::vector<ScriptDomain>& doms) {
  const auto deadline = Clock::now() + std::chrono::minutes(1);
  for (const auto& d : doms) {
    while (true) {
      char* xml = virDomainGetXMLDesc(d.dom, 0);
      const bool connected = xml && std::string(xml).find("state='connected'") != std::string::npos;
      free(xml);
      if (connected) break;
      if (Clock::now() > deadline) return Status::Timeout(d.name + ": its agent never connected");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return Status::Ok();
}

}  // namespace

Status ScriptRound(std::vector<ScriptDomain>& doms, const std::string& tag,
                   unsigned int extra_flags, Samples& out, bool quiesce, RoundTimeline* timeline) {
  const size_t n = doms.size();
  std::vector<Clock::time_point> start(n), end(n), first(n), last(n);
  std::vector<Clock::time_point> frozen_at(n), cut_at(n), thaw_at(n);
  std::vector<Status> errors(n);
  const auto parties = static_cast<std::ptrdiff_t>(n);
  std::barrier frozen(parties), suspended(parties), snapped(parties), resumed(parties);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ScriptDomain& d = doms[i];
      auto fail = [&](const std::string& what) {
        if (errors[i].ok()) errors[i] = LibvirtError(what + " " + d.name);
      };
      first[i] = Clock::now();
      if (quiesce && virDomainFSFreeze(d.dom, nullptr, 0, 0) < 0) fail("fsfreeze");
      frozen_at[i] = Clock::now();
      frozen.arrive_and_wait();
      start[i] = Clock::now();
      if (virDomainSuspend(d.dom) < 0) fail("suspend");
      suspended.arrive_and_wait();
      std::vector<std::string> files;
      for (const auto& disk : d.disks) files.push_back(disk + "." + tag);
      virDomainSnapshotPtr snap = virDomainSnapshotCreateXML(
          d.dom, SnapshotXml(tag, files).c_str(),
          VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC | extra_flags);
      if (!snap) fail("snapshot");
      cut_at[i] = Clock::now();
      if (snap) {
        virDomainSnapshotFree(snap);
        d.tops = files;
      }
      snapped.arrive_and_wait();
      if (virDomainResume(d.dom) < 0) fail("resume");
      end[i] = Clock::now();
      resumed.arrive_and_wait();
      thaw_at[i] = Clock::now();
      if (quiesce && virDomainFSThaw(d.dom, nullptr, 0, 0) < 0) fail("fsthaw");
      last[i] = Clock::now();
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) VMG_RETURN_IF_ERROR(e);
  if (timeline) {
    auto us = [](Clock::time_point t) { return Micros(t.time_since_epoch()); };
    timeline->guests.clear();
    for (size_t i = 0; i < n; ++i) {
      timeline->guests.push_back(
          {us(first[i]), us(frozen_at[i]), us(cut_at[i]), us(thaw_at[i]), us(last[i])});
    }
  }
  int64_t max_pause = 0;
  for (size_t i = 0; i < n; ++i) max_pause = std::max(max_pause, Micros(end[i] - start[i]));
  out.window_us.push_back(Micros(*std::max_element(end.begin(), end.end()) -
                                 *std::min_element(start.begin(), start.end())));
  out.max_pause_us.push_back(max_pause);
  out.total_us.push_back(Micros(*std::max_element(last.begin(), last.end()) -
                                *std::min_element(first.begin(), first.end())));
  return Status::Ok();
}

Status ConnectEach(const std::string& uri, std::vector<ScriptDomain>& doms) {
  for (auto& d : doms) {
    d.conn = virConnectOpen(uri.c_str());
    if (!d.conn) return LibvirtError("connect to " + uri);
    d.dom = virDomainLookupByName(d.conn, d.name.c_str());
    if (!d.dom) return LibvirtError("look up " + d.name);
    if (d.tops.empty()) d.tops = d.disks;
  }
  return Status::Ok();
}

void Disconnect(std::vector<ScriptDomain>& doms) {
  for (auto& d : doms) {
    if (d.dom) virDomainFree(d.dom);
    if (d.conn) virConnectClose(d.conn);
    d.dom = nullptr;
    d.conn = nullptr;
  }
}

Result<Samples> MeasureLibvirtMemory(const std::string& uri, const std::string& image_dir,
                                     const GuestSpec& guest, int n, int rounds) {
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (!conn) return LibvirtError("connect to " + uri);
  storage::QemuImg img(Env::Default());
  std::vector<ScriptDomain> doms(static_cast<size_t>(n));
  Status status;
  for (int i = 0; i < n && status.ok(); ++i) {
    ScriptDomain& d = doms[static_cast<size_t>(i)];
    d.name = "mem" + std::to_string(guest.memory_mib) + "-" + std::to_string(i);
    d.disks.push_back(image_dir + "/" + d.name + "-d0.qcow2");
    status = img.Create(d.disks.back(), 64 << 20);
    if (!status.ok()) break;
    d.dom = virDomainCreateXML(conn, DomainXml(d.name, d.disks, &guest).c_str(), 0);
    if (!d.dom) status = LibvirtError("start " + d.name);
  }
  if (status.ok()) status = WaitForMarker(doms, guest.ready_marker);
  Samples out;
  for (int r = 0; r < rounds && status.ok(); ++r) {
    std::vector<Clock::time_point> start(doms.size()), end(doms.size());
    std::vector<Status> errors(doms.size());
    std::vector<std::thread> threads;
    const std::string tag = "m" + std::to_string(r);
    for (size_t i = 0; i < doms.size(); ++i) {
      threads.emplace_back([&, i] {
        ScriptDomain& d = doms[i];
        const std::string xml =
            SnapshotXml(tag, {d.disks[0] + "." + tag}, d.disks[0] + "." + tag + ".mem");
        start[i] = Clock::now();
        virDomainSnapshotPtr snap = virDomainSnapshotCreateXML(d.dom, xml.c_str(), 0);
        end[i] = Clock::now();
        if (!snap) errors[i] = LibvirtError("memory snapshot of " + d.name);
        if (snap) virDomainSnapshotFree(snap);
        (void)std::filesystem::remove(d.disks[0] + "." + tag + ".mem");  // keep the disk small
      });
    }
    for (auto& t : threads) t.join();
    for (auto& e : errors) {
      if (status.ok()) status = e;
    }
    int64_t longest = 0;
    for (size_t i = 0; i < doms.size(); ++i) longest = std::max(longest, Micros(end[i] - start[i]));
    out.window_us.push_back(Micros(*std::max_element(end.begin(), end.end()) -
                                   *std::min_element(start.begin(), start.end())));
    out.max_pause_us.push_back(longest);
    out.total_us.push_back(out.window_us.back());
  }
  DestroyAll(doms);
  virConnectClose(conn);
  if (!status.ok()) return status;
  return out;
}

Result<Samples> MeasureLibvirtQuiesced(const std::string& uri, const std::string& image_dir,
                                       const GuestSpec& guest, int n, int rounds, Duration gap,
                                       std::vector<RoundTimeline>* timelines) {
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (!conn) return LibvirtError("connect to " + uri);
  std::vector<ScriptDomain> doms(static_cast<size_t>(n));
  Status status;
  for (int i = 0; i < n && status.ok(); ++i) {
    ScriptDomain& d = doms[static_cast<size_t>(i)];
    d.name = "app" + std::to_string(i);
    d.disks.push_back(image_dir + "/" + d.name + "-d0.qcow2");
    status = testing::MakeExt4Image(d.disks.back(), 64 << 20);
    if (!status.ok()) break;
    d.dom = virDomainCreateXML(conn, DomainXml(d.name, d.disks, &guest).c_str(), 0);
    if (!d.dom) status = LibvirtError("start " + d.name);
  }
  // Ready as vmgroup's side is: the agent answers and the workload writes.
  for (const std::string& marker : {guest.ready_marker, std::string("wrote ")}) {
    if (status.ok()) status = WaitForMarker(doms, marker);
  }
  if (status.ok()) status = WaitForAgents(doms);
  Samples out, warmup;
  RoundTimeline round;
  int64_t last_thaw = 0;
  if (status.ok()) status = ScriptRound(doms, "warm", 0, warmup, /*quiesce=*/true, &round);
  if (status.ok()) Rebase(round, &last_thaw);
  for (int r = 0; r < rounds && status.ok(); ++r) {
    std::this_thread::sleep_for(gap);  // ScriptRound returns as its last thaw is answered
    status = ScriptRound(doms, "q" + std::to_string(r), 0, out, /*quiesce=*/true, &round);
    if (!status.ok()) break;
    Rebase(round, &last_thaw);
    timelines->push_back(round);
  }
  DestroyAll(doms);
  virConnectClose(conn);
  if (!status.ok()) return status;
  return out;
}

Result<std::map<int, Samples>> MeasureLibvirt(const std::string& uri, const std::string& image_dir,
                                              const std::vector<int>& sizes, int rounds,
                                              const GuestSpec* guest) {
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (!conn) return LibvirtError("connect to " + uri);
  storage::QemuImg img(Env::Default());
  std::map<int, Samples> results;
  Status status;
  for (int n : sizes) {
    std::vector<ScriptDomain> doms(static_cast<size_t>(n));
    for (int i = 0; i < n && status.ok(); ++i) {
      ScriptDomain& d = doms[static_cast<size_t>(i)];
      d.name = "lv" + std::to_string(n) + "-" + std::to_string(i);
      for (int k = 0; k < 2 && status.ok(); ++k) {
        d.disks.push_back(image_dir + "/" + d.name + "-d" + std::to_string(k) + ".qcow2");
        status = img.Create(d.disks.back(), 16 << 20);
      }
      if (!status.ok()) break;
      d.dom = virDomainCreateXML(conn, DomainXml(d.name, d.disks, guest).c_str(), 0);
      if (!d.dom) status = LibvirtError("start " + d.name);
    }
    if (status.ok() && guest) status = WaitForMarker(doms, guest->ready_marker);
    Samples warmup;
    if (status.ok()) status = ScriptRound(doms, "warm", 0, warmup);
    for (int r = 0; r < rounds && status.ok(); ++r) {
      status = ScriptRound(doms, "r" + std::to_string(r), 0, results[n]);
    }
    DestroyAll(doms);
    if (!status.ok()) break;
  }
  virConnectClose(conn);
  if (!status.ok()) return status;
  return results;
}

Result<std::string> RunLibvirtWorker(Env* env, const std::string& dir,
                                     const std::vector<std::string>& worker_args) {
  for (const char* sub : {"home", "run", "cfg", "cache", "img"}) {
    VMG_RETURN_IF_ERROR(env->CreateDirs(dir + "/" + sub));
  }
  fs::permissions(dir + "/run", fs::perms::owner_all);
  const passwd* nobody = ::getpwnam("nobody");
  if (!nobody) return Status::Unavailable("no user 'nobody' to run libvirtd as");
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    (void)!::chown(entry.path().c_str(), nobody->pw_uid, nobody->pw_gid);
  }
  (void)!::chown(dir.c_str(), nobody->pw_uid, nobody->pw_gid);

  const std::vector<std::string> as_nobody = {"setpriv",
                                              "--reuid=nobody",
                                              "--regid=nogroup",
                                              "--clear-groups",
                                              "env",
                                              "-i",
                                              "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                              "HOME=" + dir + "/home",
                                              "XDG_RUNTIME_DIR=" + dir + "/run",
                                              "XDG_CONFIG_HOME=" + dir + "/cfg",
                                              "XDG_CACHE_HOME=" + dir + "/cache"};
  std::vector<std::string> daemon = as_nobody;
  daemon.push_back("libvirtd");
  VMG_ASSIGN_OR_RETURN(int pid, env->Spawn(daemon, {.log_path = dir + "/libvirtd.log"}));

  const std::string sock = dir + "/run/libvirt/libvirt-sock";
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!env->FileExists(sock) && env->IsAlive(pid) && Clock::now() < deadline) {
    env->SleepFor(std::chrono::milliseconds(50));
  }
  Result<CommandOutput> out =
      Status::Unavailable("libvirtd did not start; see " + dir + "/libvirtd.log");
  if (env->FileExists(sock)) {
    std::vector<std::string> worker = as_nobody;
    worker.push_back(fs::read_symlink("/proc/self/exe").string());
    worker.insert(worker.end(), worker_args.begin(), worker_args.end());
    out = env->Run(worker, std::chrono::minutes(30));
  }

  // Stop libvirtd, then whatever it left (virtlogd, QEMU), by PID.
  (void)env->Kill(pid, SIGTERM);
  if (!env->WaitGone(pid, std::chrono::seconds(10)).ok()) (void)env->Kill(pid, SIGKILL);
  std::vector<std::string> pidfiles = {dir + "/run/libvirt/virtlogd.pid"};
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/run/libvirt/qemu/run", ec)) {
    if (e.path().extension() == ".pid") pidfiles.push_back(e.path());
  }
  for (const auto& f : pidfiles) {
    int left = 0;
    if (std::ifstream(f) >> left && left > 0) {
      (void)env->Kill(left, SIGKILL);
      (void)env->WaitGone(left, std::chrono::seconds(10));
    }
  }

  if (!out.ok()) return out.status();
  if (out->exit_code != 0) return Status::Failed("libvirt worker failed: " + out->err);
  return out->out;
}

Result<std::map<int, Samples>> RunLibvirtSamples(Env* env, const std::string& dir,
                                                 const std::vector<std::string>& worker_args) {
  VMG_ASSIGN_OR_RETURN(std::string out, RunLibvirtWorker(env, dir, worker_args));
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (!j.is_object()) return Status::Failed("unreadable libvirt worker output: " + out);
  std::map<int, Samples> samples;
  for (auto& [key, s] : j.items()) samples[std::stoi(key)] = FromJson(s);
  return samples;
}

}  // namespace vmgroup::bench
