#include "hypervisor/qemu/storage_daemon.h"

#include <signal.h>

#include <cstdio>

#include "hypervisor/qemu/listen_socket.h"
#include "hypervisor/qemu/nbd_serving.h"
#include "hypervisor/qemu/qmp_commands.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// A few QMP commands, and the daemon's start.
constexpr auto kServeTimeout = std::chrono::seconds(30);
constexpr auto kExitWait = std::chrono::seconds(5);
constexpr int kMonitorFd = 3;
// The NBD server's listening socket: qemu-storage-daemon 7.2 has no getfd,
// so it is started on the command line with the descriptor it inherits.
constexpr int kNbdFd = 4;

std::string PidFile(const std::string& socket) { return socket + ".pid"; }
// The daemon's monitor, reached only while ServeOffline sets it up: in the
// VM's run directory (root's), apart from its QEMU's.
std::string MonitorPath(const VmSpec& spec) { return spec.run_dir + "/serve-qmp.sock"; }
std::string LogPath(const VmSpec& spec) { return spec.run_dir + "/storage-daemon.log"; }
// Appended, not "d" + a temporary: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105651)
std::string DiskNode(int disk) { return std::string("d").append(std::to_string(disk)); }

// The daemon recorded for `socket` while it still runs (the same process:
// its start time and command line match); 0 when none.
Result<int> RecordedDaemon(Env* env, const std::string& socket) {
  if (!env->FileExists(PidFile(socket))) return 0;
  VMG_ASSIGN_OR_RETURN(std::string text, env->ReadFile(PidFile(socket)));
  int pid = 0;
  long long start = 0;
  if (std::sscanf(text.c_str(), "%d %lld", &pid, &start) != 2 || pid <= 0) {
    return Status::InvalidState(PidFile(socket) + " is not a pid file of vmgroup's");
  }
  auto started = env->ProcessStartTime(pid);
  if (!started.ok() || *started != start) return 0;  // gone, or the pid is another's now
  auto cmdline = env->ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline.ok() || cmdline->find("qemu-storage-daemon") == std::string::npos) return 0;
  return pid;
}

Status EndDaemon(Env* env, int pid) {
  (void)env->Kill(pid, SIGTERM);  // it ends its exports, cutting clients off
  if (env->WaitGone(pid, kExitWait).ok()) return Status::Ok();
  (void)env->Kill(pid, SIGKILL);
  return env->WaitGone(pid, kExitWait).Annotate("qemu-storage-daemon " + std::to_string(pid));
}

// The node of each image in its disk's chain (opened as DiskNode), checked
// as Driver::ServeImages says.
Result<std::vector<ServedNode>> ServedNodes(QmpClient& c, const std::vector<ServedImage>& images,
                                            Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto graph, qmp::QueryFormatNodeGraph(c, deadline));
  auto find = [&](auto pred) {
    auto it = std::find_if(graph.begin(), graph.end(), pred);
    return it == graph.end() ? nullptr : &*it;
  };
  std::vector<ServedNode> nodes;
  for (const auto& i : images) {
    const qmp::FormatNode* n = find([&](const auto& f) { return f.node == DiskNode(i.disk); });
    while (n && n->file != i.image) {
      n = n->backing.empty() ? nullptr : find([&](const auto& f) { return f.file == n->backing; });
    }
    if (!n)
      return Status::NotFound("disk " + std::to_string(i.disk) + " has " + i.image + " not open");
    if (!i.tracking.empty()) {
      VMG_RETURN_IF_ERROR(CheckTrustedBitmap(c, n->node, i.image, i.tracking, deadline));
    }
    nodes.push_back({n->node, n->size});
  }
  return nodes;
}

Result<std::vector<ServedExport>> Serve(Env* env, const VmSpec& spec,
                                        const std::vector<ServedImage>& images, int port) {
  const Deadline deadline = env->Now() + kServeTimeout;
  VMG_ASSIGN_OR_RETURN(auto client, QmpClient::Connect(env, MonitorPath(spec), deadline));
  // Connected: nobody else needs to reach the monitor.
  (void)env->RemoveFile(MonitorPath(spec));
  VMG_ASSIGN_OR_RETURN(auto nodes, ServedNodes(*client, images, deadline));
  return ExportNodes(*client, nodes, images, port, deadline);
}

}  // namespace

std::vector<std::string> ReadOnlyDaemonArgs(
    const std::string& monitor, const std::vector<std::pair<std::string, std::string>>& images) {
  std::vector<std::string> args = {"--chardev", "socket,id=m,server=on,wait=off," + monitor,
                                   "--monitor", "chardev=m"};
  for (const auto& [node, image] : images) {
    args.insert(args.end(), {"--blockdev", "driver=qcow2,read-only=on,force-share=on,node-name=" +
                                               node + ",file.driver=file,file.filename=" + image});
  }
  return args;
}

Result<std::vector<ServedExport>> ServeOffline(Env* env, const std::string& binary,
                                               const std::optional<QemuUser>& user,
                                               const VmSpec& spec, const NbdListen& at,
                                               const std::vector<ServedImage>& images) {
  const std::string& socket = at.path;
  VMG_ASSIGN_OR_RETURN(int running, RecordedDaemon(env, socket));
  if (running) {
    return Status::AlreadyExists("qemu-storage-daemon " + std::to_string(running) + " serves on " +
                                 socket + " already");
  }
  std::vector<std::pair<std::string, std::string>> disks;
  for (const auto& i : images) {
    if (i.disk < 0 || static_cast<size_t>(i.disk) >= spec.disks.size()) {
      return Status::InvalidArgument("no disk " + std::to_string(i.disk));
    }
    std::pair<std::string, std::string> disk{DiskNode(i.disk), spec.disks[i.disk]};
    if (std::find(disks.begin(), disks.end(), disk) == disks.end()) disks.push_back(disk);
  }
  VMG_ASSIGN_OR_RETURN(Listener listener, ListenFor(at));
  auto monitor = ListenAt(MonitorPath(spec), ExistingFile::kReplace);
  if (!monitor.ok()) {
    if (at.tcp_host.empty()) (void)env->RemoveFile(socket);
    return monitor.status();
  }
  std::vector<std::string> argv = user ? user->RunAs() : std::vector<std::string>{};
  argv.push_back(binary);
  const auto args = ReadOnlyDaemonArgs("fd=" + std::to_string(kMonitorFd), disks);
  argv.insert(argv.end(), args.begin(), args.end());
  std::string server = "addr.type=fd,addr.str=" + std::to_string(kNbdFd);
  if (!at.tls_dir.empty()) {
    // As QEMU's object-add (StartNbdServer) makes them; a comma in the
    // path is written twice, as QEMU's option syntax escapes it.
    std::string dir;
    for (char ch : at.tls_dir) dir += ch == ',' ? std::string(",,") : std::string(1, ch);
    argv.insert(argv.end(), {"--object", std::string("tls-creds-x509,id=") + kNbdTlsCreds +
                                             ",endpoint=server,verify-peer=on,dir=" + dir});
    server += std::string(",tls-creds=") + kNbdTlsCreds;
  }
  argv.insert(argv.end(), {"--nbd-server", server});
  // Recorded before it runs: a crash right after leaves nothing unrecorded.
  auto record = [&](int pid) -> Status {
    VMG_ASSIGN_OR_RETURN(int64_t start, env->ProcessStartTime(pid));
    return env->WriteFile(PidFile(socket), std::to_string(pid) + " " + std::to_string(start));
  };
  auto pid = env->Spawn(argv, {.log_path = LogPath(spec),
                               .fds = {{monitor->get(), kMonitorFd}, {listener.fd.get(), kNbdFd}},
                               .admit = record});
  monitor->reset();
  listener.fd.reset();
  auto exports = pid.ok() ? Serve(env, spec, images, listener.port) : pid.status();
  if (exports.ok()) return exports;
  Status s = exports.status();
  if (pid.ok()) {
    if (Status ended = EndDaemon(env, *pid); !ended.ok()) {
      return Status(s.code(), s.message() + "; ending it failed too: " + ended.ToString());
    }
    std::string said = env->ReadFile(LogPath(spec)).value_or("");
    if (said.size() > 500) said = said.substr(said.size() - 500);
    if (!said.empty()) s = s.Annotate("qemu-storage-daemon: " + said);
  }
  (void)env->RemoveFile(MonitorPath(spec));
  (void)env->RemoveFile(PidFile(socket));
  (void)env->RemoveFile(socket);
  return s;
}

Status StopServingOffline(Env* env, const std::string& socket) {
  VMG_ASSIGN_OR_RETURN(int pid, RecordedDaemon(env, socket));
  if (pid) VMG_RETURN_IF_ERROR(EndDaemon(env, pid));
  VMG_RETURN_IF_ERROR(env->RemoveFile(PidFile(socket)));
  return env->RemoveFile(socket);
}

}  // namespace vmgroup::hypervisor::qemu
