// The catalog's reference points, export records and exports in progress.
#include <algorithm>

#include "catalog/catalog.h"
#include "catalog/columns.h"

namespace vmgroup::catalog {

Status Catalog::InsertReferencePoint(const ReferencePointRecord& rp) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare("INSERT INTO reference_points(id,collection_id,name,snapshot_id,"
                   "bitmap,cut_us,created_us,consistency) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)"));
  VMG_RETURN_IF_ERROR(ins.Bind(1, rp.id)
                          .Bind(2, rp.collection_id)
                          .Bind(3, rp.name)
                          .Bind(4, rp.snapshot_id)
                          .Bind(5, rp.bitmap)
                          .Bind(6, rp.cut_us)
                          .Bind(7, rp.created_us)
                          .Bind(8, static_cast<int>(rp.consistency))
                          .Run());
  for (size_t i = 0; i < rp.members.size(); ++i) {
    const ReferencePointMember& m = rp.members[i];
    VMG_ASSIGN_OR_RETURN(Stmt mi, db_->Prepare("INSERT INTO reference_point_members(id,rp_id,vm_id,"
                                               "position,images) VALUES(?1,?2,?3,?4,?5)"));
    VMG_RETURN_IF_ERROR(mi.Bind(1, m.id)
                            .Bind(2, rp.id)
                            .Bind(3, m.vm_id)
                            .Bind(4, static_cast<int>(i))
                            .Bind(5, ToJson(m.images))
                            .Run());
  }
  return txn.Commit();
}

Result<ReferencePointRecord> Catalog::GetReferencePointLocked(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT collection_id,name,snapshot_id,bitmap,cut_us,"
                                            "created_us,consistency FROM reference_points "
                                            "WHERE id=?1"));
  q.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("no reference point has id " + id);
  ReferencePointRecord rp{.id = id,
                          .collection_id = q.Text(0),
                          .name = q.Text(1),
                          .snapshot_id = q.Text(2),
                          .bitmap = q.Text(3),
                          .cut_us = q.Int(4),
                          .created_us = q.Int(5),
                          .consistency = static_cast<Consistency>(q.Int(6))};
  VMG_ASSIGN_OR_RETURN(Stmt m, db_->Prepare("SELECT id,vm_id,images FROM reference_point_members "
                                            "WHERE rp_id=?1 ORDER BY position"));
  m.Bind(1, id);
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool more, m.Step());
    if (!more) break;
    rp.members.push_back({m.Text(0), m.Text(1), FromJson(m.Text(2))});
  }
  return rp;
}

Result<ReferencePointRecord> Catalog::GetReferencePoint(const std::string& id) {
  std::lock_guard lock(mu_);
  return GetReferencePointLocked(id);
}

Result<std::vector<ReferencePointRecord>> Catalog::ListReferencePoints(
    const std::string& collection_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT id FROM reference_points WHERE ?1='' OR "
                                            "collection_id=?1 ORDER BY created_us, id"));
  q.Bind(1, collection_id);
  VMG_ASSIGN_OR_RETURN(auto ids, Texts(q));
  std::vector<ReferencePointRecord> out;
  for (const auto& id : ids) {
    VMG_ASSIGN_OR_RETURN(auto rp, GetReferencePointLocked(id));
    out.push_back(std::move(rp));
  }
  return out;
}

Status Catalog::DropReferencePointsOnLocked(const std::string& image) {
  std::vector<std::string> dead;
  {
    VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT rp_id,images FROM reference_point_members"));
    while (true) {
      VMG_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      const std::vector<std::string> images = FromJson(q.Text(1));
      if (std::find(images.begin(), images.end(), image) != images.end()) {
        dead.push_back(q.Text(0));
      }
    }
  }
  for (const auto& id : dead) {
    VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM reference_points WHERE id=?1"));
    VMG_RETURN_IF_ERROR(d.Bind(1, id).Run());
  }
  return Status::Ok();
}

Status Catalog::DeleteReferencePoint(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM reference_points WHERE id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, id).Run());
  return NotFoundIfUnchanged(*db_, "reference point " + id);
}

Status Catalog::RecordExport(const std::string& snapshot_id, const std::string& directory,
                             int64_t us) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt ins,
                       db_->Prepare("INSERT OR REPLACE INTO exports(snapshot_id,directory,"
                                    "exported_us) VALUES(?1,?2,?3)"));
  return ins.Bind(1, snapshot_id).Bind(2, directory).Bind(3, us).Run();
}

Result<std::vector<std::string>> Catalog::ExportsOf(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT directory FROM exports WHERE snapshot_id=?1 "
                                            "ORDER BY exported_us DESC"));
  q.Bind(1, snapshot_id);
  return Texts(q);
}

Status Catalog::ForgetExport(const std::string& snapshot_id, const std::string& directory) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d,
                       db_->Prepare("DELETE FROM exports WHERE snapshot_id=?1 AND directory=?2"));
  return d.Bind(1, snapshot_id).Bind(2, directory).Run();
}

Status Catalog::InsertExportIntent(const ExportIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt ins, db_->Prepare("INSERT INTO export_intents(directory,snapshot_id,"
                                              "made,across_hosts) VALUES(?1,?2,?3,?4)"));
  Status s = ins.Bind(1, intent.directory)
                 .Bind(2, intent.snapshot_id)
                 .Bind(3, intent.made)
                 .Bind(4, intent.across_hosts ? 1 : 0)
                 .Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("an export into " + intent.directory + " is in progress");
  }
  return s;
}

Status Catalog::DeleteExportIntent(const std::string& directory) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM export_intents WHERE directory=?1"));
  return d.Bind(1, directory).Run();
}

Result<std::vector<ExportIntent>> Catalog::ListExportIntents() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT directory,snapshot_id,made,across_hosts FROM "
                                            "export_intents ORDER BY directory"));
  std::vector<ExportIntent> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool more, q.Step());
    if (!more) break;
    out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3) != 0});
  }
  return out;
}

}  // namespace vmgroup::catalog
