// MemberClaims: which VMs are in a group operation now. An operation claims
// its members for its whole run; one that overlaps it is refused with Busy.
//
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "catalog/catalog.h"

namespace vmgroup::engine {

class MemberClaims;

// The claim of some VMs; releases them when it goes out of scope. Move-only.
class MemberClaim {
 public:
  MemberClaim(MemberClaim&& other) noexcept;
  MemberClaim& operator=(MemberClaim&&) = delete;
  MemberClaim(const MemberClaim&) = delete;
  ~MemberClaim();

 private:
  friend class MemberClaims;
  MemberClaim(MemberClaims* claims, std::vector<std::string> ids);

  MemberClaims* claims_;  // null once moved from
  std::vector<std::string> ids_;
};

class MemberClaims {
 public:
  // OK unless one of `vms` is claimed: Busy, naming it.
  Status CheckFree(const std::vector<catalog::VmRecord>& vms);

  // Claims every one of `vms`, or none: Busy (as CheckFree) when one is
  // claimed already.
  Result<MemberClaim> Claim(const std::vector<catalog::VmRecord>& vms);

  // Runs `fn` unless VM `vm_id` is claimed, with no claim possible
  // meanwhile: false (and `fn` not run) when it is claimed.
  bool RunUnclaimed(const std::string& vm_id, const std::function<void()>& fn);

 private:
  friend class MemberClaim;
  // REQUIRES: mu_ held.
  Status CheckFreeLocked(const std::vector<catalog::VmRecord>& vms);
  void Release(const std::vector<std::string>& ids);

  std::mutex mu_;
  std::set<std::string> busy_;  // guarded by mu_: the VM ids claimed
};

}  // namespace vmgroup::engine
