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
#include "engine/peers.h"

namespace vmgroup::engine {

class CollectionManager {
 public:
  // `peers`: the hosts a group may span (peers.h); null: none. Outlives this.
  CollectionManager(Env* env, catalog::Catalog* catalog, Peers* peers = nullptr)
      : env_(env), catalog_(catalog), peers_(peers) {}

  // Creates an empty collection of `type` and returns its CollectionID:
  // `id` when given (it must be a GUID not in use), else a new GUID. An
  // empty `name` gets the default name for the type.
  Result<std::string> DefineCollection(const std::string& name, const std::string& id,
                                       catalog::CollectionType type);

  // Adds a VM to a VM collection, or a collection to a management
  // collection (never creating a cycle; not a group with members on other
  // hosts: NotSupported).
  Status AddMember(const std::string& member_id, const std::string& collection_id);
  // Adds VM `m.vm_id` of host `m.host` to VM group `collection_id`: the
  // host makes it a member of its part of the group first (Peers::Join),
  // then the catalog records it. NotSupported without peers or for a group
  // inside a management collection; NotFound for a host that is not a
  // peer, an unknown group, or a VM the host does not have;
  // InvalidArgument for a VM id that is not a GUID; AlreadyExists.
  Status AddRemoteMember(const catalog::RemoteMember& m, const std::string& collection_id);
  // Takes it out of the group (NotFound if it is no member) and out of the
  // host's part (Peers::Leave); a host that cannot be reached keeps it in
  // its part, which is said in the log, not refused.
  Status RemoveRemoteMember(const catalog::RemoteMember& m, const std::string& collection_id);
  // NotFound unless `member_id` is a member of the collection.
  Status RemoveMember(const std::string& member_id, const std::string& collection_id);
  // Like RemoveMember, but OK when the collection or the membership does not
  // exist (documented as idempotent).
  Status RemoveMemberById(const std::string& member_id, const std::string& collection_id);
  Status RenameCollection(const std::string& collection_id, const std::string& new_name);
  // Refused (InvalidState) while the collection has members or snapshots, or
  // is itself a member of a management collection.
  Status DestroyCollection(const std::string& collection_id);

  // The VMs a snapshot of `collection_id` covers: its members (those on this
  // host), or for a management collection the VMs of every collection below
  // it, each once, in membership order; NotSupported when one below it has
  // members on other hosts.
  Result<std::vector<std::string>> MemberVms(const std::string& collection_id);

 private:
  // True if `needle` is `collection_id` or lies below it.
  Result<bool> Contains(const std::string& collection_id, const std::string& needle, int depth);

  Env* env_;
  catalog::Catalog* catalog_;
  Peers* peers_;
};

}  // namespace vmgroup::engine
