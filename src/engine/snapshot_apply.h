// SnapshotApply: a group taken back to one of its snapshots
// (SnapshotEngine::Apply says what it answers).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/group_operation.h"

namespace vmgroup::engine {

class SnapshotApply : public GroupOperation {
 public:
  // REQUIRES: `request` outlives the operation.
  SnapshotApply(GroupParts& parts, const ApplyRequest& request)
      : parts_(parts), request_(request) {}

  std::string_view Name() const override { return "apply_snapshot"; }
  Status Check() override;
  Status RecordIntent() override;
  // Up to the catalog commit: Prepare, then Commit.
  Status Work() override;
  // Every member stopped and on new overlays of the snapshot's frozen
  // images, those with memory state launched paused: all still undone by
  // Undo.
  Status Prepare();
  // The catalog commit of what Prepare made; nothing changed on an error.
  Status Commit();
  // In place of RecordIntent and Prepare: the apply `intent` this host
  // held, prepared, before it restarted (Catalog::HoldApplyIntent), taken up
  // as Prepare left it, for Commit or Undo. REQUIRES: Check() OK.
  void TakeUp(const catalog::ApplyIntent& intent);
  // Names the new overlays. REQUIRES: RecordIntent() or TakeUp() ran.
  const std::string& tag() const { return tag_; }
  // The new overlays go, the VMs that ran start again on their old images.
  Status Undo(const Status& cause) override;
  // The members go on as the snapshot had them; the discarded images go.
  Status Finish() override;

  // The applied snapshot. REQUIRES: Check() returned OK.
  const catalog::SnapshotRecord& snapshot() const { return s_; }

 private:
  GroupParts& parts_;
  const ApplyRequest& request_;
  catalog::SnapshotRecord s_;
  std::string tag_;               // names the new overlays
  std::set<std::string> paused_;  // the members that were paused
  // What Work did so far, for Undo.
  std::vector<std::string> stopped_, created_;
  std::vector<size_t> redefined_;  // members (libvirt domains) defined on the new overlays
  // Members started from their memory state, paused, until the commit.
  std::vector<std::pair<std::string, std::unique_ptr<hypervisor::Vm>>> launched_;
  std::vector<catalog::AppliedMember> applied_;
};

}  // namespace vmgroup::engine
