// CollectionManager: the semantics of Msvm_CollectionManagementService
// (reference §3) at library level. Errors map to the documented family-B
// return codes through ReturnCodeB (base/return_codes.h):
//   unknown collection or member, malformed Id, duplicate Id,
//   member added twice                                  -> 32773 Invalid parameter
//   destroying a collection that still has members,
//   snapshots or a parent                               -> 32775 Invalid state
//
// Thread-safe (the catalog serialises; each method is one catalog change).
#pragma once

#include <string>

#include "base/env.h"
#include "catalog/catalog.h"

namespace vmgroup::engine {

class CollectionManager {
 public:
  CollectionManager(Env* env, catalog::Catalog* catalog) : env_(env), catalog_(catalog) {}

  // Creates an empty collection of `type` and returns its CollectionID:
  // `id` when given (it must be a GUID not in use), else a new GUID. An
  // empty `name` gets the default name for the type.
  Result<std::string> DefineCollection(const std::string& name, const std::string& id,
                                       catalog::CollectionType type);

  // Adds a VM to a VM collection, or a collection to a management
  // collection (never creating a cycle).
  Status AddMember(const std::string& member_id, const std::string& collection_id);
  // NotFound unless `member_id` is a member of the collection.
  Status RemoveMember(const std::string& member_id, const std::string& collection_id);
  // Like RemoveMember, but OK when the collection or the membership does not
  // exist (documented as idempotent).
  Status RemoveMemberById(const std::string& member_id, const std::string& collection_id);
  Status RenameCollection(const std::string& collection_id, const std::string& new_name);
  // Refused (InvalidState) while the collection has members or snapshots, or
  // is itself a member of a management collection.
  Status DestroyCollection(const std::string& collection_id);

  // The VMs a snapshot of `collection_id` covers: its members, or for a
  // management collection the VMs of every collection below it, each once,
  // in membership order.
  Result<std::vector<std::string>> MemberVms(const std::string& collection_id);

 private:
  // True if `needle` is `collection_id` or lies below it.
  Result<bool> Contains(const std::string& collection_id, const std::string& needle, int depth);

  Env* env_;
  catalog::Catalog* catalog_;
};

}  // namespace vmgroup::engine
