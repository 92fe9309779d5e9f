#include "engine/member_claims.h"

namespace vmgroup::engine {

MemberClaim::MemberClaim(MemberClaims* claims, std::vector<std::string> ids)
    : claims_(claims), ids_(std::move(ids)) {}

MemberClaim::MemberClaim(MemberClaim&& other) noexcept
    : claims_(std::exchange(other.claims_, nullptr)), ids_(std::move(other.ids_)) {}

MemberClaim::~MemberClaim() {
  if (claims_) claims_->Release(ids_);
}

Status MemberClaims::CheckFreeLocked(const std::vector<catalog::VmRecord>& vms) {
  for (const auto& vm : vms) {
    if (busy_.count(vm.id)) {
      return Status::Busy("VM " + vm.name + " is in another snapshot operation; try again");
    }
  }
  return Status::Ok();
}

Status MemberClaims::CheckFree(const std::vector<catalog::VmRecord>& vms) {
  std::lock_guard lock(mu_);
  return CheckFreeLocked(vms);
}

Result<MemberClaim> MemberClaims::Claim(const std::vector<catalog::VmRecord>& vms) {
  std::lock_guard lock(mu_);
  VMG_RETURN_IF_ERROR(CheckFreeLocked(vms));
  std::vector<std::string> ids;
  for (const auto& vm : vms) {
    busy_.insert(vm.id);
    ids.push_back(vm.id);
  }
  return MemberClaim(this, std::move(ids));
}

uint64_t MemberClaims::Releases() {
  std::lock_guard lock(mu_);
  return releases_;
}

bool MemberClaims::RunUnclaimed(const std::string& vm_id, uint64_t since,
                                const std::function<void()>& fn) {
  std::lock_guard lock(mu_);
  if (busy_.count(vm_id)) return false;
  if (auto it = released_at_.find(vm_id); it != released_at_.end() && it->second > since) {
    return false;
  }
  fn();
  return true;
}

void MemberClaims::OnRelease(std::function<void(const std::vector<std::string>&)> released) {
  std::lock_guard lock(mu_);
  released_ = std::move(released);
}

void MemberClaims::Release(const std::vector<std::string>& ids) {
  std::function<void(const std::vector<std::string>&)> tell;
  {
    std::lock_guard lock(mu_);
    ++releases_;
    for (const auto& id : ids) {
      busy_.erase(id);
      released_at_[id] = releases_;
    }
    tell = released_;
  }
  if (tell) tell(ids);
}

}  // namespace vmgroup::engine
