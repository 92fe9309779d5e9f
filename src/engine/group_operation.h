// GroupOperation: one operation on a group's VMs, as its own steps; and
// OperationRunner, which runs every operation the same way: check, claim the
// members, record the intent, work (undone on failure), finish, release.
#pragma once

#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "catalog/catalog.h"
#include "engine/collections.h"
#include "engine/member_claims.h"
#include "engine/operation_metrics.h"
#include "engine/operation_requests.h"
#include "engine/served_images.h"
#include "engine/vm_registry.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

// What the operations work with. Outlives every operation run on it.
struct GroupParts {
  GroupParts(Env* env_in, catalog::Catalog* catalog_in, VmRegistry* vms_in,
             CollectionManager* collections_in, SnapshotOptions options_in)
      : env(env_in),
        catalog(catalog_in),
        vms(vms_in),
        collections(collections_in),
        img(env_in),
        options(options_in) {}

  Env* env;
  catalog::Catalog* catalog;
  VmRegistry* vms;
  CollectionManager* collections;
  storage::QemuImg img;
  SnapshotOptions options;
  // What backup sessions serve: operations that would change it refuse.
  ServedImages served;
};

// The phases of one operation; OperationRunner calls them in order. Each
// returns OK to go on; an error is the operation's answer.
class GroupOperation {
 public:
  virtual ~GroupOperation() = default;

  // What the operation is, for the metrics: "create_snapshot", ...
  virtual std::string_view Name() const = 0;

  // Reads only: whether the operation can run, with the errors that change
  // nothing. Fills members_.
  virtual Status Check() = 0;
  // The VMs the operation claims. REQUIRES: Check() returned OK.
  const std::vector<catalog::VmRecord>& members() const { return members_; }

  // With the members claimed: records what recovery needs to undo or finish
  // the work should the service die (and does what must precede that). A
  // failure here is not undone.
  virtual Status RecordIntent() { return Status::Ok(); }
  // The work, up to and including its commit. A failure runs Undo.
  virtual Status Work() = 0;
  // Takes back what Work did and returns `cause`, with what could not be
  // undone said in it.
  virtual Status Undo(const Status& cause) { return cause; }
  // After the commit: never undone; an error says what is left to do.
  virtual Status Finish() { return Status::Ok(); }
  // After a run that succeeded: records what the operation measured (a
  // snapshot's pauses) beside the outcome the runner records itself.
  virtual void Report(OperationMetrics&) const {}

 protected:
  // The VMs the operation works on, as Check() found them; none for an
  // operation that changes no member's images or power.
  std::vector<catalog::VmRecord> members_;
};

class OperationRunner {
 public:
  // `metrics`: where Run records each operation's end; null keeps none.
  // REQUIRES: both outlive the runner.
  explicit OperationRunner(MemberClaims* claims, OperationMetrics* metrics = nullptr)
      : claims_(claims), metrics_(metrics) {}

  // What the operation refuses before it changes anything: Check, then
  // Busy when a member is claimed.
  Status Validate(GroupOperation& op);
  // The same, for an operation made only to be validated.
  Status Validate(GroupOperation&& op) { return Validate(op); }

  // Check, claim the members (Busy when one is claimed), then RunClaimed;
  // the members are released when it returns. What ran is recorded in the
  // metrics (a refusal by Check or Busy is not: nothing ran).
  Status Run(GroupOperation& op);

  // Records the intent, works (undone on failure) and finishes.
  // REQUIRES: op's members are claimed and op is checked (by the caller,
  // an operation that runs `op` as one of its steps).
  static Status RunClaimed(GroupOperation& op) { return RunSteps(op, nullptr); }

 private:
  // RunClaimed; `undone` (if not null) is set when Work failed and Undo ran.
  static Status RunSteps(GroupOperation& op, bool* undone);

  MemberClaims* claims_;
  OperationMetrics* metrics_;
};

}  // namespace vmgroup::engine
