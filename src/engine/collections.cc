#include "engine/collections.h"

#include <algorithm>
#include <functional>

#include "base/ids.h"
#include "base/log.h"

namespace vmgroup::engine {
namespace {

// Management collections may nest; deeper than this is treated as a cycle.
constexpr int kMaxDepth = 32;
// CollectionID and ElementName limits (MaxLen(256) in the reference).
constexpr size_t kMaxLen = 256;

}  // namespace

Result<std::string> CollectionManager::DefineCollection(const std::string& name,
                                                        const std::string& id,
                                                        catalog::CollectionType type) {
  if (type != catalog::CollectionType::kVirtualSystems &&
      type != catalog::CollectionType::kCollections) {
    return Status::InvalidArgument("Type must be 0 (virtual systems) or 1 (collections), got " +
                                   std::to_string(static_cast<int>(type)));
  }
  if (!id.empty() && !IsGuid(id)) {
    return Status::InvalidArgument("Id '" + id + "' is not a GUID");
  }
  if (name.size() > kMaxLen) return Status::InvalidArgument("Name is longer than 256 characters");
  catalog::CollectionRecord c;
  c.id = id.empty() ? NewGuid() : id;
  std::transform(c.id.begin(), c.id.end(), c.id.begin(), ::tolower);
  c.name = !name.empty()                                      ? name
           : type == catalog::CollectionType::kVirtualSystems ? "New VM Group"
                                                              : "New Management Group";
  c.type = type;
  c.created_us = env_->NowMicros();
  VMG_RETURN_IF_ERROR(catalog_->InsertCollection(c));
  return c.id;
}

Result<bool> CollectionManager::Contains(const std::string& collection_id,
                                         const std::string& needle, int depth) {
  if (collection_id == needle) return true;
  if (depth > kMaxDepth) return true;
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(collection_id));
  if (c.type != catalog::CollectionType::kCollections) return false;
  for (const auto& m : c.members) {
    VMG_ASSIGN_OR_RETURN(bool inside, Contains(m, needle, depth + 1));
    if (inside) return true;
  }
  return false;
}

Status CollectionManager::AddMember(const std::string& member_id,
                                    const std::string& collection_id) {
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(collection_id));
  if (c.type == catalog::CollectionType::kVirtualSystems) {
    auto vm = catalog_->GetVm(member_id);
    if (!vm.ok()) {
      return vm.status().code() == Code::kNotFound
                 ? Status::NotFound("no VM " + member_id + " to add to collection " + c.name)
                 : vm.status();
    }
  } else {
    auto child = catalog_->GetCollection(member_id);
    if (!child.ok()) {
      return child.status().code() == Code::kNotFound
                 ? Status::NotFound("no collection " + member_id + " to add to " + c.name)
                 : child.status();
    }
    if (!child->remote_members.empty()) {
      return Status::NotSupported("group " + child->name +
                                  " has members on other hosts; groups of such groups are not "
                                  "offered yet");
    }
    VMG_ASSIGN_OR_RETURN(bool cycle, Contains(member_id, collection_id, 0));
    if (cycle) {
      return Status::InvalidArgument("adding collection " + child->name + " to " + c.name +
                                     " would make a collection contain itself");
    }
  }
  return catalog_->AddMember(collection_id, member_id);
}

Status CollectionManager::AddRemoteMember(const catalog::RemoteMember& m,
                                          const std::string& collection_id) {
  if (!IsGuid(m.vm_id)) {
    return Status::InvalidArgument("VM id '" + m.vm_id + "' of host " + m.host + " is not a UUID");
  }
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(collection_id));
  if (c.type != catalog::CollectionType::kVirtualSystems) {
    return Status::InvalidArgument("collection " + c.name +
                                   " is a group of groups: a VM joins a VM group");
  }
  if (peers_ == nullptr) {
    return Status::NotSupported(
        "this vmgroupd has no peers configured (--peer NAME=URL) to "
        "reach host " +
        m.host);
  }
  VMG_RETURN_IF_ERROR(peers_->Known(m.host));
  VMG_ASSIGN_OR_RETURN(auto parents, catalog_->CollectionsOf(collection_id));
  if (!parents.empty()) {
    return Status::NotSupported("group " + c.name +
                                " is a member of a management collection; groups of groups "
                                "across hosts are not offered yet");
  }
  if (std::find(c.remote_members.begin(), c.remote_members.end(), m) != c.remote_members.end()) {
    return Status::AlreadyExists("VM " + m.vm_id + " of host " + m.host +
                                 " is already a member of group " + c.name);
  }
  VMG_RETURN_IF_ERROR(peers_->Join(m.host, c.id, c.name, m.vm_id));
  Status added = catalog_->AddRemoteMember(collection_id, m);
  if (!added.ok()) (void)peers_->Leave(m.host, c.id, m.vm_id);
  return added;
}

Status CollectionManager::RemoveRemoteMember(const catalog::RemoteMember& m,
                                             const std::string& collection_id) {
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(collection_id));
  bool removed = false;
  VMG_RETURN_IF_ERROR(catalog_->RemoveRemoteMember(collection_id, m, &removed));
  if (!removed) {
    return Status::NotFound("VM " + m.vm_id + " of host " + m.host + " is not a member of group " +
                            c.name);
  }
  if (peers_ != nullptr) {
    if (Status left = peers_->Leave(m.host, c.id, m.vm_id); !left.ok()) {
      Log(LogLevel::kWarning, "VM " + m.vm_id + " left group " + c.name + ", but host " + m.host +
                                  " keeps it in its part of the group: " + left.message());
    }
  }
  return Status::Ok();
}

Status CollectionManager::RemoveMember(const std::string& member_id,
                                       const std::string& collection_id) {
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(collection_id));
  bool removed = false;
  VMG_RETURN_IF_ERROR(catalog_->RemoveMember(collection_id, member_id, &removed));
  if (!removed) return Status::NotFound(member_id + " is not a member of collection " + c.name);
  return Status::Ok();
}

Status CollectionManager::RemoveMemberById(const std::string& member_id,
                                           const std::string& collection_id) {
  if (member_id.empty() || collection_id.empty()) {
    return Status::InvalidArgument("RemoveMemberById needs a member and a collection id");
  }
  bool removed = false;
  return catalog_->RemoveMember(collection_id, member_id, &removed);
}

Status CollectionManager::RenameCollection(const std::string& collection_id,
                                           const std::string& new_name) {
  if (new_name.empty()) return Status::InvalidArgument("NewName must not be empty");
  if (new_name.size() > kMaxLen) {
    return Status::InvalidArgument("NewName is longer than 256 characters");
  }
  return catalog_->RenameCollection(collection_id, new_name);
}

Status CollectionManager::DestroyCollection(const std::string& collection_id) {
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(collection_id));
  if (!c.members.empty() || !c.remote_members.empty()) {
    return Status::InvalidState("collection " + c.name + " still has " +
                                std::to_string(c.members.size() + c.remote_members.size()) +
                                " member(s); remove them first");
  }
  VMG_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(collection_id));
  // Snapshots across hosts with no part here are only in their own table.
  VMG_ASSIGN_OR_RETURN(auto across, catalog_->ListSpanning());
  size_t count = snapshots.size();
  for (const auto& s : across) {
    const bool listed = std::any_of(snapshots.begin(), snapshots.end(),
                                    [&](const catalog::SnapshotRecord& r) { return r.id == s.id; });
    if (s.collection_id == collection_id && !listed) ++count;
  }
  if (count > 0) {
    return Status::InvalidState("collection " + c.name + " has " + std::to_string(count) +
                                " snapshot(s); delete them first");
  }
  VMG_ASSIGN_OR_RETURN(auto parents, catalog_->CollectionsOf(collection_id));
  if (!parents.empty()) {
    return Status::InvalidState("collection " + c.name + " is a member of collection " +
                                parents[0] + "; remove it from there first");
  }
  return catalog_->DeleteCollection(collection_id);
}

Result<std::vector<std::string>> CollectionManager::MemberVms(const std::string& collection_id) {
  std::vector<std::string> vms;
  // Depth-first in membership order: expand collections, keep VMs.
  std::function<Status(const std::string&, int)> walk = [&](const std::string& id, int depth) {
    if (depth > kMaxDepth) return Status::Internal("collections nest too deeply at " + id);
    VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord c, catalog_->GetCollection(id));
    if (depth > 0 && !c.remote_members.empty()) {
      return Status::NotSupported("group " + c.name +
                                  " has members on other hosts; a snapshot of a group of groups "
                                  "across hosts is not offered yet");
    }
    for (const auto& m : c.members) {
      if (c.type == catalog::CollectionType::kCollections) {
        VMG_RETURN_IF_ERROR(walk(m, depth + 1));
      } else if (std::find(vms.begin(), vms.end(), m) == vms.end()) {
        vms.push_back(m);
      }
    }
    return Status::Ok();
  };
  VMG_RETURN_IF_ERROR(walk(collection_id, 0));
  return vms;
}

}  // namespace vmgroup::engine
