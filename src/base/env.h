// Env: everything vmgroup needs from the operating system that a test may want
// to control — the clock, sleeps, files, child processes and named fault points.
// Modelled on LevelDB's Env: production code receives an Env*, tests wrap the
// default one (EnvWrapper) and override a single method, e.g. to crash the
// process at a fault point or to make one member's transaction fail.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace vmgroup {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::steady_clock::duration;
// A point in time by which a call must have returned.
using Deadline = Clock::time_point;

// What a finished command printed and how it ended.
struct CommandOutput {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
};

// How the kernel schedules a thread: time-shared at a niceness (-20..19),
// or real-time first-in-first-out at a priority (1..99).
struct Scheduling {
  bool realtime = false;
  int level = 0;  // niceness, or the real-time priority
  bool operator==(const Scheduling&) const = default;
};

struct ThreadInfo {
  int tid = 0;
  std::string name;
};

// How to start a long-lived child process.
struct SpawnOptions {
  std::string log_path;  // stdout and stderr are appended here; required
  // Start in a new session, so a terminal's signals or the end of the parent
  // do not reach it (VMs outlive the daemon).
  bool new_session = true;
  // The child's standard input; -1: /dev/null. The caller keeps its copy.
  int stdin_fd = -1;
  // Descriptors the child inherits: (ours, its number in the child), each
  // child number above 2 and used once. The caller keeps its copies; no
  // other descriptor reaches the child (all of ours are close-on-exec).
  std::vector<std::pair<int, int>> fds;
  // Above 0: the child, and whatever it starts, runs real time at this
  // priority (1..99) from its first instruction. Best effort: where raising
  // needs a privilege this process lacks, the child starts as usual.
  int realtime_priority = 0;
  // When set, the child is held before it runs argv: `admit` is called with
  // its pid (a caller records it there, durably), and the child runs argv
  // only once admit returns OK. If admit fails, Spawn returns its error and
  // the child exits without running argv; if this process dies before admit
  // returns, the child does the same. Held, the child's command line already
  // ends with argv.
  std::function<Status(int pid)> admit;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide default Env. Never deleted.
  static Env* Default();

  // Microseconds since the Unix epoch (wall clock; for records people read).
  virtual int64_t NowMicros() = 0;
  // Monotonic clock (for deadlines and measured durations).
  virtual Clock::time_point Now() = 0;
  virtual void SleepFor(Duration d) = 0;

  virtual bool FileExists(const std::string& path) = 0;
  // OK if the file is gone afterwards, including when it never existed.
  virtual Status RemoveFile(const std::string& path) = 0;
  // Creates `path` and its missing parents (mode 0755).
  virtual Status CreateDirs(const std::string& path) = 0;
  // Puts a file's written data on stable storage (fsync).
  virtual Status SyncFile(const std::string& path) = 0;
  // Starts writing a file's dirty data back without waiting for it, so
  // that a SyncFile later has little left to do. FileNotFound if missing.
  virtual Status StartWriteback(const std::string& path) = 0;
  // Opens `path` as open(2) does with `flags` (always close-on-exec) and,
  // when creating, `mode`. FileNotFound when it (or a directory on its
  // way) is missing, AlreadyExists when O_EXCL met an existing one, IoError
  // otherwise; each says "cannot open <path>: <why>".
  virtual Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode) = 0;
  // The whole content of a file. FileNotFound if it does not exist.
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // Creates or replaces `path` with `data`, all or nothing: written beside
  // it under a temporary name, synced, then renamed over it.
  virtual Status WriteFile(const std::string& path, std::string_view data) = 0;
  // Removes an empty directory. OK if it is gone afterwards.
  virtual Status RemoveDir(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;

  // Children (Run and Spawn) start clean, whatever this process set: every
  // signal at its default disposition and none blocked (a daemon that blocks
  // SIGTERM or ignores SIGPIPE must not pass that on), stdin from /dev/null.
  //
  // Runs argv[0] (looked up in PATH) to completion and captures its output.
  // A non-zero exit is not an error here; the caller reads exit_code.
  // Timeout when it runs past `timeout`, after killing it.
  virtual Result<CommandOutput> Run(const std::vector<std::string>& argv,
                                    Duration timeout = std::chrono::minutes(5)) = 0;
  // Starts a long-lived child and returns its PID at once.
  virtual Result<int> Spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) = 0;
  // True while `pid` exists and is not a zombie of ours. Reaps it if it was
  // our child and has exited.
  virtual bool IsAlive(int pid) = 0;
  // Sends `signal` to `pid` (by PID only, never by name). OK if already gone.
  virtual Status Kill(int pid, int signal) = 0;
  // Waits until `pid` is gone or `timeout` passes; Timeout in the latter case.
  virtual Status WaitGone(int pid, Duration timeout) = 0;
  // When process `pid` started, in clock ticks since boot (/proc/PID/stat,
  // field 22). With the pid it names one process for the host's uptime: a
  // pid used again comes with a later start time. Unavailable when no such
  // process exists (a zombie counts as gone).
  virtual Result<int64_t> ProcessStartTime(int pid) = 0;

  // The threads of process `pid`, with their names ("CPU 0/TCG", ...).
  // Unavailable when the process is gone.
  virtual Result<std::vector<ThreadInfo>> Threads(int pid) = 0;
  // How thread `tid` (0: the calling thread) is scheduled. Raising it (a
  // lower niceness, or real time) needs CAP_SYS_NICE: IoError without. A
  // raised thread's new threads start at the defaults, not as it was raised.
  virtual Result<Scheduling> GetScheduling(int tid) = 0;
  virtual Status SetScheduling(int tid, const Scheduling& s) = 0;

  // A named fault point (engine/fault_points.h lists them). `subject` names
  // what the point is about, e.g. the VM a member step runs for. The default
  // does nothing and returns OK; a test Env may return an error, which the
  // caller treats as a failure of that step, or end the process.
  virtual Status Hit(std::string_view point, std::string_view subject) = 0;
};

// Forwards every call to another Env; derive from it to override one method.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}

  int64_t NowMicros() override { return target_->NowMicros(); }
  Clock::time_point Now() override { return target_->Now(); }
  void SleepFor(Duration d) override { target_->SleepFor(d); }
  bool FileExists(const std::string& p) override { return target_->FileExists(p); }
  Status RemoveFile(const std::string& p) override { return target_->RemoveFile(p); }
  Status SyncFile(const std::string& p) override { return target_->SyncFile(p); }
  Status StartWriteback(const std::string& p) override { return target_->StartWriteback(p); }
  Status CreateDirs(const std::string& p) override { return target_->CreateDirs(p); }
  Result<UniqueFd> OpenFile(const std::string& p, int flags, int mode) override {
    return target_->OpenFile(p, flags, mode);
  }
  Result<std::string> ReadFile(const std::string& p) override { return target_->ReadFile(p); }
  Status WriteFile(const std::string& p, std::string_view data) override {
    return target_->WriteFile(p, data);
  }
  Status RemoveDir(const std::string& p) override { return target_->RemoveDir(p); }
  Result<std::vector<std::string>> ListDir(const std::string& p) override {
    return target_->ListDir(p);
  }
  Result<CommandOutput> Run(const std::vector<std::string>& argv, Duration timeout) override {
    return target_->Run(argv, timeout);
  }
  Result<int> Spawn(const std::vector<std::string>& argv, const SpawnOptions& o) override {
    return target_->Spawn(argv, o);
  }
  bool IsAlive(int pid) override { return target_->IsAlive(pid); }
  Status Kill(int pid, int signal) override { return target_->Kill(pid, signal); }
  Status WaitGone(int pid, Duration timeout) override { return target_->WaitGone(pid, timeout); }
  Result<int64_t> ProcessStartTime(int pid) override { return target_->ProcessStartTime(pid); }
  Result<std::vector<ThreadInfo>> Threads(int pid) override { return target_->Threads(pid); }
  Result<Scheduling> GetScheduling(int tid) override { return target_->GetScheduling(tid); }
  Status SetScheduling(int tid, const Scheduling& s) override {
    return target_->SetScheduling(tid, s);
  }
  Status Hit(std::string_view point, std::string_view subject) override {
    return target_->Hit(point, subject);
  }

 private:
  Env* target_;
};

}  // namespace vmgroup
