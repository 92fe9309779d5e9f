// The writer of a memory state: QEMU streams a Standard snapshot's RAM (a
// background-snapshot migration, qmp::MigrateCommand) into a pipe, and a
// process of ours copies the pipe into the state's file.
//
// A process, not a thread of ours: the copy must go on if this process dies
// mid-save (QEMU 7.2 wedges for good when a background snapshot's stream
// breaks), so it runs in a session of its own. A shell running `cat`:
// children start only through Env::Spawn, which execs (a fork of this
// threaded process that ran our code on could make only async-signal-safe
// calls), and the shell adds the fallback below in one line. Without it
// vmgroup would need a copying program of its own installed beside the
// daemon. QEMU cannot do without the writer: its "exec:" migration spawns
// a shell, which -sandbox forbids, and handed the file itself (getfd) it
// writes the whole RAM before it lets the guest run (measured with two
// 128 MiB guests: a 210 ms group pause instead of 16 ms).
#pragma once

#include <string>

#include "base/env.h"
#include "base/unique_fd.h"

namespace vmgroup::hypervisor::qemu {

struct StateWriter {
  int pid = 0;    // the writer process, in a session of its own
  UniqueFd pipe;  // the pipe's write end: for QEMU (getfd), then closed
};

// Creates the state's file at `path` (mode 0600) and starts its writer,
// which reads the stream from the pipe and appends its own errors to
// `log_path`. The writer exits when every copy of `pipe` is closed and the
// stream is out. Should the file not take the stream (no space, its
// directory gone), the writer removes it and drains the rest: the stream
// never breaks, and a missing file afterwards says the save failed.
// AlreadyExists if `path` exists (a stale state is never overwritten);
// IoError if it cannot be created or no pipe made; the writer's start
// failing as Env::Spawn says, the file removed again.
Result<StateWriter> StartStateWriter(Env* env, const std::string& path,
                                     const std::string& log_path);

// Raises the thread of QEMU `qemu_pid` that streams a background snapshot
// (QEMU 7.2 names it "bg_snapshot") to the writer's priority, once the
// migration has started. Best effort, as the writer's.
void RaiseStateSaver(Env* env, int qemu_pid);

}  // namespace vmgroup::hypervisor::qemu
