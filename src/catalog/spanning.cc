// The catalog's groups across hosts, on their coordinator: members on other
// hosts, and snapshots across hosts with each host's part.
#include "catalog/catalog.h"
#include "catalog/columns.h"

namespace vmgroup::catalog {

Status Catalog::AddRemoteMember(const std::string& collection_id, const RemoteMember& m) {
  std::lock_guard lock(mu_);
  VMG_RETURN_IF_ERROR(GetCollectionLocked(collection_id).status());
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare("INSERT INTO remote_members(collection_id,host,vm_id,position) SELECT ?1,?2,?3,"
                   " COALESCE(MAX(position),0)+1 FROM remote_members WHERE collection_id=?1"));
  Status s = ins.Bind(1, collection_id).Bind(2, m.host).Bind(3, m.vm_id).Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("VM " + m.vm_id + " of host " + m.host +
                                 " is already a member of collection " + collection_id);
  }
  return s;
}

Status Catalog::RemoveRemoteMember(const std::string& collection_id, const RemoteMember& m,
                                   bool* removed) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM remote_members WHERE collection_id=?1 "
                                            "AND host=?2 AND vm_id=?3"));
  VMG_RETURN_IF_ERROR(d.Bind(1, collection_id).Bind(2, m.host).Bind(3, m.vm_id).Run());
  *removed = db_->Changes() > 0;
  return Status::Ok();
}

Status Catalog::InsertSpanning(const SpanningSnapshotRecord& s) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(Stmt ins,
                       db_->Prepare("INSERT INTO spanning_snapshots(id,collection_id,name,type,"
                                    "state,created_us,consistency) VALUES(?1,?2,?3,?4,?5,?6,?7)"));
  Status st = ins.Bind(1, s.id)
                  .Bind(2, s.collection_id)
                  .Bind(3, s.name)
                  .Bind(4, s.type)
                  .Bind(5, static_cast<int>(s.state))
                  .Bind(6, s.created_us)
                  .Bind(7, static_cast<int>(s.consistency))
                  .Run();
  if (st.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("snapshot " + s.id + " is recorded already");
  }
  VMG_RETURN_IF_ERROR(st);
  for (size_t i = 0; i < s.parts.size(); ++i) {
    VMG_ASSIGN_OR_RETURN(Stmt part, db_->Prepare("INSERT INTO spanning_parts(snapshot_id,position,"
                                                 "host,vm_ids) VALUES(?1,?2,?3,?4)"));
    VMG_RETURN_IF_ERROR(part.Bind(1, s.id)
                            .Bind(2, static_cast<int64_t>(i))
                            .Bind(3, s.parts[i].host)
                            .Bind(4, ToJson(s.parts[i].vm_ids))
                            .Run());
  }
  return txn.Commit();
}

Status Catalog::CompleteSpanning(const SpanningSnapshotRecord& s) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE spanning_snapshots SET state=?2,window_us=?3,"
                                            "cut_spread_us=?4 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, s.id)
                          .Bind(2, static_cast<int>(SpanningState::kComplete))
                          .Bind(3, s.window_us)
                          .Bind(4, s.cut_spread_us)
                          .Run());
  VMG_RETURN_IF_ERROR(NotFoundIfUnchanged(*db_, "snapshot " + s.id));
  for (size_t i = 0; i < s.parts.size(); ++i) {
    const SpanningPart& p = s.parts[i];
    VMG_ASSIGN_OR_RETURN(Stmt part,
                         db_->Prepare("UPDATE spanning_parts SET vm_ids=?3,earliest_cut_us=?4,"
                                      "latest_cut_us=?5,longest_pause_us=?6 WHERE snapshot_id=?1 "
                                      "AND position=?2"));
    VMG_RETURN_IF_ERROR(part.Bind(1, s.id)
                            .Bind(2, static_cast<int64_t>(i))
                            .Bind(3, ToJson(p.vm_ids))
                            .Bind(4, p.earliest_cut_us)
                            .Bind(5, p.latest_cut_us)
                            .Bind(6, p.longest_pause_us)
                            .Run());
    VMG_RETURN_IF_ERROR(NotFoundIfUnchanged(*db_, "part " + p.host + " of snapshot " + s.id));
  }
  return txn.Commit();
}

Status Catalog::SetSpanningState(const std::string& id, SpanningState state) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE spanning_snapshots SET state=?2 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, id).Bind(2, static_cast<int>(state)).Run());
  return NotFoundIfUnchanged(*db_, "snapshot " + id);
}

Status Catalog::ConvertSpanning(const std::string& id, const std::string& rp_id,
                                int64_t converted_us) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE spanning_snapshots SET state=?2,"
                                            "reference_point_id=?3,converted_us=?4 WHERE id=?1 "
                                            "AND state=?5"));
  Status st = u.Bind(1, id)
                  .Bind(2, static_cast<int>(SpanningState::kConverting))
                  .Bind(3, rp_id)
                  .Bind(4, converted_us)
                  .Bind(5, static_cast<int>(SpanningState::kComplete))
                  .Run();
  if (st.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("reference point " + rp_id + " is recorded already");
  }
  VMG_RETURN_IF_ERROR(st);
  if (db_->Changes() > 0) return Status::Ok();
  VMG_RETURN_IF_ERROR(GetSpanningLocked(id).status());
  return Status::InvalidState("snapshot " + id + " is not a complete snapshot across hosts");
}

Status Catalog::DeleteSpanning(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM spanning_snapshots WHERE id=?1"));
  return d.Bind(1, id).Run();
}

Result<SpanningSnapshotRecord> Catalog::GetSpanningLocked(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT id,collection_id,name,type,state,created_us,"
                                            "window_us,cut_spread_us,reference_point_id,"
                                            "converted_us,consistency FROM spanning_snapshots "
                                            "WHERE id=?1"));
  q.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("no snapshot across hosts has id " + id);
  SpanningSnapshotRecord s{.id = q.Text(0),
                           .collection_id = q.Text(1),
                           .name = q.Text(2),
                           .type = static_cast<int>(q.Int(3)),
                           .consistency = static_cast<Consistency>(q.Int(10)),
                           .state = static_cast<SpanningState>(q.Int(4)),
                           .created_us = q.Int(5),
                           .window_us = q.Int(6),
                           .cut_spread_us = q.Int(7),
                           .reference_point_id = q.Text(8),
                           .converted_us = q.Int(9)};
  VMG_ASSIGN_OR_RETURN(Stmt p, db_->Prepare("SELECT host,vm_ids,earliest_cut_us,latest_cut_us,"
                                            "longest_pause_us FROM spanning_parts WHERE "
                                            "snapshot_id=?1 ORDER BY position"));
  p.Bind(1, id);
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool more, p.Step());
    if (!more) break;
    s.parts.push_back({.host = p.Text(0),
                       .vm_ids = FromJson(p.Text(1)),
                       .earliest_cut_us = p.Int(2),
                       .latest_cut_us = p.Int(3),
                       .longest_pause_us = p.Int(4)});
  }
  return s;
}

Result<SpanningSnapshotRecord> Catalog::GetSpanning(const std::string& id) {
  std::lock_guard lock(mu_);
  return GetSpanningLocked(id);
}

Result<SpanningSnapshotRecord> Catalog::GetSpanningReferencePoint(const std::string& rp_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt q,
      db_->Prepare("SELECT id FROM spanning_snapshots WHERE reference_point_id=?1 AND ?1!=''"));
  q.Bind(1, rp_id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("no reference point across hosts has id " + rp_id);
  return GetSpanningLocked(q.Text(0));
}

Result<std::vector<SpanningSnapshotRecord>> Catalog::ListSpanning() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q,
                       db_->Prepare("SELECT id FROM spanning_snapshots ORDER BY created_us, id"));
  return LoadEach(q, &Catalog::GetSpanningLocked);
}

}  // namespace vmgroup::catalog
