#include "engine/guest_freeze.h"

#include "engine/parallel.h"

namespace vmgroup::engine {
namespace {

// How long the thaws in the destructor may take: it runs on paths that
// already failed, with no deadline of their own.
constexpr auto kLateThaw = std::chrono::seconds(10);

}  // namespace

GuestFreeze::GuestFreeze(Env* env, std::vector<FreezeMember> members, const ArmGuard& arm,
                         Deadline deadline)
    : env_(env), members_(std::move(members)), timings_(members_.size()) {
  auto named = [&](size_t i, const Status& s) {
    return Status(s.code(),
                  "VM " + members_[i].name + ": cannot freeze its filesystems: " + s.message());
  };
  results_ = EachInParallel(members_.size(), [&](size_t i) -> Status {
    const FreezeMember& m = members_[i];
    if (!m.running) {
      return Status::Unavailable("VM " + m.name +
                                 " is paused: its guest agent cannot freeze its filesystems");
    }
    Status open = m.vm->OpenAgent(deadline);
    return open.ok() ? open : named(i, open);
  });
  std::vector<std::shared_ptr<hypervisor::Vm>> open;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (results_[i].ok()) open.push_back(members_[i].vm);
  }
  if (open.empty()) return;
  auto guard = arm(open);
  if (!guard.ok()) {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (!results_[i].ok()) continue;
      results_[i] = named(i, guard.status());
      (void)members_[i].vm->ThawFilesystems(deadline);  // closes the channel; nothing is frozen
    }
    return;
  }
  guard_ = std::move(*guard);
  first_freeze_ = env_->Now();
  results_ = EachInParallel(members_.size(), [&](size_t i) -> Status {
    if (!results_[i].ok()) return results_[i];
    timings_[i].freeze_sent_us = env_->NowMicros();
    auto frozen = members_[i].vm->FreezeFilesystems(deadline);
    timings_[i].freeze_answered_us = env_->NowMicros();
    return frozen.ok() ? Status::Ok() : named(i, frozen.status());
  });
}

GuestFreeze::~GuestFreeze() { (void)Thaw(env_->Now() + kLateThaw); }

std::vector<std::string> GuestFreeze::Thaw(Deadline deadline) {
  if (thawed_) return {};
  thawed_ = true;
  std::vector<Status> thaws = EachInParallel(members_.size(), [&](size_t i) -> Status {
    if (!Frozen(i)) return Status::Ok();
    timings_[i].thaw_sent_us = env_->NowMicros();
    Status thawed = members_[i].vm->ThawFilesystems(deadline).status();
    timings_[i].thaw_answered_us = env_->NowMicros();
    return thawed;
  });
  bool any_frozen = false;
  for (size_t i = 0; i < members_.size(); ++i) any_frozen = any_frozen || Frozen(i);
  if (any_frozen) {
    window_us_ =
        std::chrono::duration_cast<std::chrono::microseconds>(env_->Now() - first_freeze_).count();
  }
  std::vector<std::string> failed;
  for (size_t i = 0; i < thaws.size(); ++i) {
    if (!thaws[i].ok()) {
      failed.push_back("VM " + members_[i].name + ": thawing its filesystems failed (" +
                       thaws[i].message() + "); the thaw guard asked its agent again");
    }
  }
  if (!guard_) return failed;
  if (failed.empty()) {
    guard_->Disarm();
  } else {
    guard_->ThawNow();
  }
  return failed;
}

}  // namespace vmgroup::engine
