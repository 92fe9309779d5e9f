// MemberClaims: which VMs are in a group operation now. An operation claims
// its members for its whole run; one that overlaps it is refused with Busy.
// Claims that end are counted, so that what was read of a VM while an
// operation held it (a listing of libvirt's domains taken mid-cut, with the
// domain paused) can be told from what was read after.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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

  // How many claims have ended so far: the moment to pass RunUnclaimed.
  uint64_t Releases();

  // Runs `fn` unless VM `vm_id` is claimed, or a claim of it ended after
  // Releases() returned `since` (what the caller read of it since may be
  // what the operation left half-way), with no claim possible meanwhile:
  // false (and `fn` not run) otherwise.
  bool RunUnclaimed(const std::string& vm_id, uint64_t since, const std::function<void()>& fn);

  // `released` is called with the ids of each claim that ends, after it
  // ended (outside the claims' lock); empty: no one is told.
  void OnRelease(std::function<void(const std::vector<std::string>&)> released);

 private:
  friend class MemberClaim;
  // REQUIRES: mu_ held.
  Status CheckFreeLocked(const std::vector<catalog::VmRecord>& vms);
  void Release(const std::vector<std::string>& ids);

  std::mutex mu_;
  std::set<std::string> busy_;  // guarded by mu_: the VM ids claimed
  uint64_t releases_ = 0;       // guarded by mu_: claims ended so far
  // guarded by mu_: for each VM ever claimed, releases_ when its last
  // claim ended (one entry per VM, never more).
  std::map<std::string, uint64_t> released_at_;
  std::function<void(const std::vector<std::string>&)> released_;  // guarded by mu_
};

}  // namespace vmgroup::engine
