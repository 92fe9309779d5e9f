#include "engine/group_operation.h"

namespace vmgroup::engine {

Status OperationRunner::Validate(GroupOperation& op) {
  VMG_RETURN_IF_ERROR(op.Check());
  return claims_->CheckFree(op.members());
}

Status OperationRunner::Run(GroupOperation& op) {
  VMG_RETURN_IF_ERROR(op.Check());
  VMG_ASSIGN_OR_RETURN(const MemberClaim claim, claims_->Claim(op.members()));
  bool undone = false;
  Status outcome = RunSteps(op, &undone);
  if (metrics_) {
    metrics_->Ended(op.Name(), outcome, undone);
    if (outcome.ok()) op.Report(*metrics_);
  }
  return outcome;
}

Status OperationRunner::RunSteps(GroupOperation& op, bool* undone) {
  VMG_RETURN_IF_ERROR(op.RecordIntent());
  if (Status w = op.Work(); !w.ok()) {
    if (undone) *undone = true;
    return op.Undo(w);
  }
  return op.Finish();
}

}  // namespace vmgroup::engine
