#include "hypervisor/qemu/state_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmgroup::hypervisor::qemu {
namespace {

// Copies the stream from its stdin into the file on descriptor 3 (named $1).
// The stream never breaks: QEMU 7.2 wedges for good when a background
// snapshot's stream breaks (a vCPU waits forever on write-protected RAM:
// seen with a full disk or a vanished directory). So if the file cannot
// take it, the writer removes the file and drains the rest, and
// QemuVm::AwaitStateSaved reports the missing file. Its errors go to its
// log (QEMU's).
constexpr char kWriter[] = "cat >&3 || { rm -f -- \"$1\"; exec cat > /dev/null; }";

// The lowest real-time priority: the writer's, and that of QEMU's thread
// streaming into it.
constexpr int kStreamPriority = 1;

}  // namespace

Result<StateWriter> StartStateWriter(Env* env, const std::string& path,
                                     const std::string& log_path) {
  auto file = env->OpenFile(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!file.ok()) {
    return file.status().code() == Code::kAlreadyExists
               ? Status::AlreadyExists("memory state " + path + " already exists")
               : file.status();
  }
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    (void)env->RemoveFile(path);
    return Status::IoError(std::string("pipe: ") + std::strerror(errno));
  }
  UniqueFd read_end(ends[0]);
  StateWriter writer{.pipe = UniqueFd(ends[1])};
  // At the lowest real-time priority, as QEMU's threads during the cut:
  // QEMU streams the RAM only as fast as the writer drains the pipe, and
  // the guest waits on each first write to a page until that page is out.
  // Measured on a busy host (two 128 MiB guests, 2 cores, load 3-5): at
  // nice -20 instead, the pause's 90th percentile doubled (41 ms against
  // 21) and the save took 480 ms instead of 350. The copy is I/O, and the
  // kernel caps real-time tasks below a whole CPU. Passed on to the cat it
  // runs; best effort, as raising needs CAP_SYS_NICE.
  auto pid = env->Spawn({"sh", "-c", kWriter, "vmgroup-state-writer", path},
                        {.log_path = log_path,
                         .stdin_fd = read_end.get(),
                         .fds = {{file->get(), 3}},
                         .realtime_priority = kStreamPriority});
  if (!pid.ok()) {
    (void)env->RemoveFile(path);
    return pid.status().Annotate("starting the memory state's writer");
  }
  writer.pid = *pid;
  return writer;
}

void RaiseStateSaver(Env* env, int qemu_pid) {
  // Both ends of the pipe run first, for the writer's reasons above. QEMU
  // starts this thread from its main loop, which the cut no longer lets
  // pass its raised priority on (Env::SetScheduling). Measured with two
  // guests of 1 GiB (memory_snapshot_bench): left at its default priority,
  // the save took 3.0-3.2 s where it took 1.5-1.7 s at the main loop's;
  // raised here, 2.04-2.09 s against 2.02 s at the main loop's, same run.
  auto threads = env->Threads(qemu_pid);
  if (!threads.ok()) return;
  for (const auto& t : *threads) {
    if (t.name == "bg_snapshot") (void)env->SetScheduling(t.tid, {true, kStreamPriority});
  }
}

}  // namespace vmgroup::hypervisor::qemu
