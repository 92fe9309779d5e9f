// The default Env, on POSIX. Children are started with posix_spawn so that no
// code runs between fork and exec in this multi-threaded process.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/env.h"
#include "base/unique_fd.h"

extern char** environ;

namespace vmgroup {
namespace {

std::string Errno(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(Errno("cannot write " + path));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// What a child starts with, for posix_spawn: standard descriptors and any
// passed ones, a clean signal state, optionally a new session and real-time
// scheduling. Every descriptor of ours is close-on-exec, so only those named
// here reach it.
class ChildSetup {
 public:
  ChildSetup(bool new_session, int realtime_priority) {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
    // Signals blocked or ignored here (the daemon blocks SIGTERM and SIGINT
    // for sigwait and ignores SIGPIPE) would otherwise be the child's too:
    // a QEMU that ignores SIGTERM cannot be stopped in order.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr_, &none);
    posix_spawnattr_setsigdefault(&attr_, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_session) flags |= POSIX_SPAWN_SETSID;
    if (realtime_priority > 0) {
      // Set in the child without SCHED_RESET_ON_FORK: what it starts inherits it.
      sched_param p{};
      p.sched_priority = realtime_priority;
      posix_spawnattr_setschedpolicy(&attr_, SCHED_FIFO);
      posix_spawnattr_setschedparam(&attr_, &p);
      flags |= POSIX_SPAWN_SETSCHEDULER;
    }
    posix_spawnattr_setflags(&attr_, flags);
  }
  // Back to the scheduling the child inherits (after EPERM: no privilege).
  void InheritScheduling() {
    short flags = 0;
    posix_spawnattr_getflags(&attr_, &flags);
    posix_spawnattr_setflags(&attr_, static_cast<short>(flags & ~POSIX_SPAWN_SETSCHEDULER));
  }
  ~ChildSetup() {
    posix_spawnattr_destroy(&attr_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  ChildSetup(const ChildSetup&) = delete;
  ChildSetup& operator=(const ChildSetup&) = delete;

  // In the order given: `path` opened as the child's `fd`; our `from` passed
  // as its `to`; its own `fd` duplicated as `as`.
  void Open(int fd, const std::string& path, int flags) {
    steps_.push_back({Step::kOpen, fd, -1, path, flags});
  }
  void Pass(int from, int to) { steps_.push_back({Step::kPass, to, from, "", 0}); }
  void Alias(int fd, int as) { steps_.push_back({Step::kAlias, as, fd, "", 0}); }

  Result<pid_t> Start(const std::vector<std::string>& argv) {
    // Each passed descriptor goes through a copy numbered above every target,
    // so that no dup2 in the child overwrites a descriptor still to be moved.
    int floor = 3;
    for (const auto& s : steps_) floor = std::max(floor, s.fd + 1);
    std::vector<UniqueFd> copies;
    for (const auto& s : steps_) {
      switch (s.kind) {
        case Step::kOpen:
          posix_spawn_file_actions_addopen(&actions_, s.fd, s.path.c_str(), s.flags, 0640);
          break;
        case Step::kPass:
          copies.emplace_back(::fcntl(s.from, F_DUPFD_CLOEXEC, floor));
          if (!copies.back().valid()) return Status::IoError(Errno("cannot pass a descriptor"));
          // dup2 to another number clears close-on-exec on the child's copy.
          posix_spawn_file_actions_adddup2(&actions_, copies.back().get(), s.fd);
          break;
        case Step::kAlias:
          posix_spawn_file_actions_adddup2(&actions_, s.from, s.fd);
          break;
      }
    }
    auto cargv = CArgv(argv);
    pid_t pid;
    int rc = ::posix_spawnp(&pid, cargv[0], &actions_, &attr_, cargv.data(), environ);
    if (rc == EPERM) {  // not allowed to raise it (exec itself says EACCES)
      InheritScheduling();
      rc = ::posix_spawnp(&pid, cargv[0], &actions_, &attr_, cargv.data(), environ);
    }
    if (rc != 0) return Status::Unavailable("cannot start " + argv[0] + ": " + std::strerror(rc));
    return pid;
  }

 private:
  struct Step {
    enum Kind { kOpen, kPass, kAlias } kind;
    int fd;    // the child's descriptor
    int from;  // kPass: ours; kAlias: the child's
    std::string path;
    int flags;
  };
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
  std::vector<Step> steps_;
};

// True if /proc says `pid` is a zombie (exited, not yet reaped by its parent).
bool IsZombie(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;  // gone
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z';
}

class PosixEnv final : public Env {
 public:
  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  Clock::time_point Now() override { return Clock::now(); }
  void SleepFor(Duration d) override { std::this_thread::sleep_for(d); }

  bool FileExists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    return Status::IoError(Errno("cannot remove " + path));
  }

  Status SyncFile(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return Status::IoError(Errno("cannot open " + path));
    if (::fsync(fd.get()) != 0) return Status::IoError(Errno("cannot sync " + path));
    return Status::Ok();
  }

  Status StartWriteback(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) return Status::FileNotFound(path + " does not exist");
      return Status::IoError(Errno("cannot open " + path));
    }
    if (::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE) != 0) {
      return Status::IoError(Errno("cannot write back " + path));
    }
    return Status::Ok();
  }

  Status CreateDirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return Status::IoError("cannot create directory " + path + ": " + ec.message());
    return Status::Ok();
  }

  Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode) override {
    UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(mode)));
    if (fd.valid()) return fd;
    const int error = errno;
    const std::string why = "cannot open " + path + ": " + std::strerror(error);
    if (error == ENOENT) return Status::FileNotFound(why);
    if (error == EEXIST) return Status::AlreadyExists(why);
    return Status::IoError(why);
  }

  Result<std::string> ReadFile(const std::string& path) override {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      if (errno == ENOENT) return Status::FileNotFound(path + " does not exist");
      return Status::IoError(Errno("cannot read " + path));
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  Status WriteFile(const std::string& path, std::string_view data) override {
    const std::string tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return Status::IoError(Errno("cannot create " + tmp));
    Status s = WriteAll(fd.get(), data, tmp);
    if (s.ok() && ::fsync(fd.get()) != 0) s = Status::IoError(Errno("cannot sync " + tmp));
    if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
      s = Status::IoError(Errno("cannot rename " + tmp + " to " + path));
    }
    if (!s.ok()) ::unlink(tmp.c_str());
    return s;
  }

  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    return Status::IoError(Errno("cannot remove directory " + path));
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      names.push_back(entry.path().filename().string());
    }
    if (ec) return Status::IoError("cannot list " + path + ": " + ec.message());
    return names;
  }

  Result<CommandOutput> Run(const std::vector<std::string>& argv, Duration timeout) override {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Status::IoError(Errno("pipe"));
    UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Status::IoError(Errno("pipe"));
    UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);

    ChildSetup child(/*new_session=*/false, /*realtime_priority=*/0);
    child.Open(0, "/dev/null", O_RDONLY);
    child.Pass(out_w.get(), 1);
    child.Pass(err_w.get(), 2);
    VMG_ASSIGN_OR_RETURN(const pid_t pid, child.Start(argv));
    out_w.reset();
    err_w.reset();

    CommandOutput result;
    const auto deadline = Clock::now() + timeout;
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    bool timed_out = false;
    while (open_fds > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      int n = ::poll(fds, 2, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[8192];
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          sinks[i]->append(buf, static_cast<size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    if (timed_out) ::kill(pid, SIGKILL);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) return Status::Timeout(argv[0] + " did not finish in time and was killed");
    result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    return result;
  }

  Result<int> Spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) override {
    ChildSetup child(opts.new_session, opts.realtime_priority);
    if (opts.stdin_fd >= 0) {
      child.Pass(opts.stdin_fd, 0);
    } else {
      child.Open(0, "/dev/null", O_RDONLY);
    }
    child.Open(1, opts.log_path, O_WRONLY | O_CREAT | O_APPEND);
    child.Alias(1, 2);
    int gate = 3;  // held children: the descriptor their gate is read from
    for (const auto& [ours, theirs] : opts.fds) {
      if (theirs <= 2) return Status::InvalidArgument("a passed descriptor must be above 2");
      child.Pass(ours, theirs);
      gate = std::max(gate, theirs + 1);
    }
    if (!opts.admit) {
      VMG_ASSIGN_OR_RETURN(const pid_t pid, child.Start(argv));
      return static_cast<int>(pid);
    }
    // Held: a shell waits for a line on the gate, then becomes argv (same
    // pid, same start time). Our end is close-on-exec, so it closes with
    // this process, and the shell then reads end of file and exits.
    if (gate > 9) return Status::InvalidArgument("a held child takes descriptors up to 8 only");
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) return Status::IoError(Errno("pipe"));
    UniqueFd gate_r(ends[0]), gate_w(ends[1]);
    child.Pass(gate_r.get(), gate);
    const std::string n = std::to_string(gate);
    std::vector<std::string> held = {
        "/bin/sh", "-c", "read -r _ <&" + n + " && exec \"$@\" " + n + "<&-", "vmgroup-held"};
    held.insert(held.end(), argv.begin(), argv.end());
    VMG_ASSIGN_OR_RETURN(const pid_t pid, child.Start(held));
    gate_r.reset();
    Status admitted = opts.admit(pid);
    if (admitted.ok()) admitted = WriteAll(gate_w.get(), "go\n", "the gate of " + argv[0]);
    gate_w.reset();  // on failure: end of file, and the child exits
    if (!admitted.ok()) {
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      return admitted;
    }
    return static_cast<int>(pid);
  }

  bool IsAlive(int pid) override {
    if (pid <= 0) return false;
    int wstatus;
    pid_t r = ::waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) return false;  // our child, now reaped
    if (r == 0) return true;     // our child, still running
    // Not our child (e.g. a VM started by an earlier run of the daemon).
    if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
    return !IsZombie(pid);
  }

  Status Kill(int pid, int signal) override {
    if (pid <= 0) return Status::InvalidArgument("refusing to signal pid " + std::to_string(pid));
    if (::kill(pid, signal) == 0 || errno == ESRCH) return Status::Ok();
    return Status::IoError(Errno("kill " + std::to_string(pid)));
  }

  Status WaitGone(int pid, Duration timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (IsAlive(pid)) {
      if (Clock::now() > deadline) {
        return Status::Timeout("process " + std::to_string(pid) + " is still running");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return Status::Ok();
  }

  Result<int64_t> ProcessStartTime(int pid) override {
    const std::string gone = "process " + std::to_string(pid) + " is gone";
    if (pid <= 0) return Status::Unavailable(gone);
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return Status::Unavailable(gone);
    // Fields after the command name, which ends at the last ')': state is
    // field 3, the start time field 22.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) return Status::Unavailable(gone);
    std::istringstream rest(line.substr(close + 1));
    std::string field;
    int64_t start = -1;
    for (int i = 3; i <= 22 && rest >> field; ++i) {
      if (i == 3 && field == "Z") return Status::Unavailable(gone);
      if (i == 22) start = std::strtoll(field.c_str(), nullptr, 10);
    }
    if (start < 0)
      return Status::IoError("cannot read the start time of process " + std::to_string(pid) +
                             " from /proc");
    return start;
  }

  Result<std::vector<ThreadInfo>> Threads(int pid) override {
    if (pid <= 0) return Status::InvalidArgument("no process " + std::to_string(pid));
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    std::vector<ThreadInfo> out;
    for (const auto& t : std::filesystem::directory_iterator(dir, ec)) {
      ThreadInfo info{std::stoi(t.path().filename().string()), ""};
      std::ifstream comm(t.path() / "comm");
      std::getline(comm, info.name);
      out.push_back(std::move(info));
    }
    if (ec) return Status::Unavailable("process " + std::to_string(pid) + " is gone");
    return out;
  }

  Result<Scheduling> GetScheduling(int tid) override {
    const pid_t who = tid == 0 ? static_cast<pid_t>(::syscall(SYS_gettid)) : tid;
    int policy = ::sched_getscheduler(who);
    if (policy < 0) return Status::IoError(Errno("sched_getscheduler " + std::to_string(tid)));
    policy &= ~SCHED_RESET_ON_FORK;  // SetScheduling's, not part of the policy
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
      sched_param p{};
      ::sched_getparam(who, &p);
      return Scheduling{true, p.sched_priority};
    }
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(who));
    if (nice == -1 && errno != 0)
      return Status::IoError(Errno("getpriority " + std::to_string(tid)));
    return Scheduling{false, nice};
  }

  Status SetScheduling(int tid, const Scheduling& s) override {
    const pid_t who = tid == 0 ? static_cast<pid_t>(::syscall(SYS_gettid)) : tid;
    sched_param p{};
    p.sched_priority = s.realtime ? s.level : 0;
    // A raised thread keeps what it was given to itself: without the flag a
    // QEMU main loop raised for a pause spawns its I/O workers at real time,
    // and they (and the workers they spawn) stay there after the pause.
    const int reset = s.realtime || s.level < 0 ? SCHED_RESET_ON_FORK : 0;
    if (::sched_setscheduler(who, (s.realtime ? SCHED_FIFO : SCHED_OTHER) | reset, &p) != 0) {
      return Status::IoError(Errno("sched_setscheduler " + std::to_string(tid)));
    }
    if (!s.realtime && ::setpriority(PRIO_PROCESS, static_cast<id_t>(who), s.level) != 0) {
      return Status::IoError(Errno("setpriority " + std::to_string(tid)));
    }
    return Status::Ok();
  }

  Status Hit(std::string_view, std::string_view) override { return Status::Ok(); }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv;  // never destroyed: used until exit
  return env;
}

}  // namespace vmgroup
