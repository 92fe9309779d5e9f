#include "hypervisor/libvirt/frozen_copy.h"

#include <signal.h>
#include <stdlib.h>

#include "base/tied_command.h"
#include "hypervisor/qemu/nbd_serving.h"
#include "hypervisor/qemu/qmp_client.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "hypervisor/qemu/storage_daemon.h"

namespace vmgroup::hypervisor::libvirt {
namespace {

namespace qmp = qemu::qmp;

constexpr char kSource[] = "frozen", kTarget[] = "copy";

Status Copy(qemu::QmpClient& c, const std::string& image, const std::string& bitmap,
            const std::string& target, Deadline deadline) {
  VMG_RETURN_IF_ERROR(qemu::CheckTrustedBitmap(c, kSource, image, bitmap, deadline));
  VMG_RETURN_IF_ERROR(qmp::BlockdevAddTarget(c, kTarget, target, deadline));
  Status s = qmp::BackupMarked(c, kTarget, kSource, kTarget, bitmap, deadline);
  if (s.ok()) s = qmp::CompleteJob(c, kTarget, deadline);
  Status closed = qmp::BlockdevDel(c, kTarget, deadline);
  return s.ok() ? closed : s;
}

}  // namespace

Status CopyMarkedOffline(Env* env, const std::string& image, const std::string& bitmap,
                         const std::string& target, Deadline deadline) {
  char dir[] = "/tmp/vmgroup-copy-XXXXXX";
  if (!::mkdtemp(dir)) return Status::IoError("cannot make a directory in /tmp");
  const std::string socket = std::string(dir) + "/qmp", log = std::string(dir) + "/log";
  // Tied to this process: one left by a daemon killed mid-copy would hold
  // the frozen image open for good.
  std::vector<std::string> argv = {"qemu-storage-daemon"};
  const auto args = qemu::ReadOnlyDaemonArgs("path=" + socket, {{kSource, image}});
  argv.insert(argv.end(), args.begin(), args.end());
  auto pid = env->Spawn(TiedToThisProcess(argv), {.log_path = log, .new_session = false});
  Status s = pid.status();
  if (pid.ok()) {
    auto client = qemu::QmpClient::Connect(env, socket, deadline);
    s = client.ok() ? Copy(**client, image, bitmap, target, deadline) : client.status();
    if (client.ok()) (void)qmp::Quit(**client, deadline);
    if (!env->WaitGone(*pid, std::chrono::seconds(5)).ok()) {
      (void)env->Kill(*pid, SIGKILL);
      (void)env->WaitGone(*pid, std::chrono::seconds(5));
    }
    if (!s.ok()) {
      auto said = env->ReadFile(log);
      if (said.ok() && !said->empty()) s = s.Annotate("qemu-storage-daemon: " + *said);
    }
  }
  (void)env->RemoveFile(socket);
  (void)env->RemoveFile(log);
  (void)env->RemoveDir(dir);
  return s.Annotate("copying what " + bitmap + " marks in " + image + " into " + target);
}

}  // namespace vmgroup::hypervisor::libvirt
