#include "hypervisor/fake/dying_env.h"

#include <thread>

namespace vmgroup::hypervisor::fake {
namespace {

// Long enough for a thread between two calls into the Env (the engine runs
// microseconds of its own code there) to reach the next one and stop.
constexpr auto kSettle = std::chrono::milliseconds(20);

}  // namespace

void DyingEnv::DieAt(std::string point, std::string subject) {
  std::lock_guard l(mu_);
  point_ = std::move(point);
  subject_ = std::move(subject);
  died_ = false;
}

bool DyingEnv::AwaitDeath(Duration timeout) {
  std::unique_lock l(mu_);
  if (!changed_.wait_for(l, timeout, [&] { return died_; })) return false;
  // Dead: no call begins any more, and each under way stops as it returns.
  changed_.wait(l, [&] { return in_flight_ == 0; });
  l.unlock();
  std::this_thread::sleep_for(kSettle);
  return true;
}

void DyingEnv::Revive() {
  std::lock_guard l(mu_);
  dead_ = false;
  point_.clear();
}

void DyingEnv::StopForGood(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  // Never notified, never destroyed: the thread outlives this Env, whose
  // test may end first.
  static auto* graveyard = new std::mutex;
  static auto* never = new std::condition_variable;
  std::unique_lock l(*graveyard);
  for (;;) never->wait(l);
}

template <typename F>
auto DyingEnv::Gate(F call) -> decltype(call()) {
  {
    std::unique_lock l(mu_);
    if (dead_) StopForGood(l);
    ++in_flight_;
  }
  auto result = call();
  std::unique_lock l(mu_);
  --in_flight_;
  changed_.notify_all();
  if (dead_) StopForGood(l);
  return result;
}

Status DyingEnv::Hit(std::string_view point, std::string_view subject) {
  {
    std::unique_lock l(mu_);
    if (dead_) StopForGood(l);
    if (!point_.empty() && point == point_ && (subject_.empty() || subject == subject_)) {
      dead_ = died_ = true;
      changed_.notify_all();
      StopForGood(l);
    }
  }
  return Gate([&] { return EnvWrapper::Hit(point, subject); });
}

int64_t DyingEnv::NowMicros() {
  return Gate([&] { return EnvWrapper::NowMicros(); });
}
Clock::time_point DyingEnv::Now() {
  return Gate([&] { return EnvWrapper::Now(); });
}
void DyingEnv::SleepFor(Duration d) {
  Gate([&] {
    EnvWrapper::SleepFor(d);
    return 0;
  });
}
bool DyingEnv::FileExists(const std::string& p) {
  return Gate([&] { return EnvWrapper::FileExists(p); });
}
Status DyingEnv::RemoveFile(const std::string& p) {
  return Gate([&] { return EnvWrapper::RemoveFile(p); });
}
Status DyingEnv::SyncFile(const std::string& p) {
  return Gate([&] { return EnvWrapper::SyncFile(p); });
}
Status DyingEnv::StartWriteback(const std::string& p) {
  return Gate([&] { return EnvWrapper::StartWriteback(p); });
}
Status DyingEnv::CreateDirs(const std::string& p) {
  return Gate([&] { return EnvWrapper::CreateDirs(p); });
}
Result<UniqueFd> DyingEnv::OpenFile(const std::string& p, int flags, int mode) {
  return Gate([&] { return EnvWrapper::OpenFile(p, flags, mode); });
}
Result<std::string> DyingEnv::ReadFile(const std::string& p) {
  return Gate([&] { return EnvWrapper::ReadFile(p); });
}
Status DyingEnv::WriteFile(const std::string& p, std::string_view data) {
  return Gate([&] { return EnvWrapper::WriteFile(p, data); });
}
Status DyingEnv::RemoveDir(const std::string& p) {
  return Gate([&] { return EnvWrapper::RemoveDir(p); });
}
Result<std::vector<std::string>> DyingEnv::ListDir(const std::string& p) {
  return Gate([&] { return EnvWrapper::ListDir(p); });
}
Result<CommandOutput> DyingEnv::Run(const std::vector<std::string>& argv, Duration timeout) {
  return Gate([&] { return EnvWrapper::Run(argv, timeout); });
}
Result<int> DyingEnv::Spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  return Gate([&] { return EnvWrapper::Spawn(argv, o); });
}
bool DyingEnv::IsAlive(int pid) {
  return Gate([&] { return EnvWrapper::IsAlive(pid); });
}
Status DyingEnv::Kill(int pid, int signal) {
  return Gate([&] { return EnvWrapper::Kill(pid, signal); });
}
Status DyingEnv::WaitGone(int pid, Duration timeout) {
  return Gate([&] { return EnvWrapper::WaitGone(pid, timeout); });
}
Result<int64_t> DyingEnv::ProcessStartTime(int pid) {
  return Gate([&] { return EnvWrapper::ProcessStartTime(pid); });
}
Result<std::vector<ThreadInfo>> DyingEnv::Threads(int pid) {
  return Gate([&] { return EnvWrapper::Threads(pid); });
}
Result<Scheduling> DyingEnv::GetScheduling(int tid) {
  return Gate([&] { return EnvWrapper::GetScheduling(tid); });
}
Status DyingEnv::SetScheduling(int tid, const Scheduling& s) {
  return Gate([&] { return EnvWrapper::SetScheduling(tid, s); });
}

}  // namespace vmgroup::hypervisor::fake
