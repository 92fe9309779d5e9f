// Who may do what on vmgroupd: members of the admin group manage, members of
// the reader group only read, everyone else nothing; root always manages.
// Membership is the host's: the user's primary group and the groups that
// list it (getgrouplist), read afresh for every connection, so a change
// to the group database holds from the next connection on.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "cim/http_message.h"

namespace vmgroup::daemon {

class Access {
 public:
  // `reader_group` may be empty (no readers).
  Access(std::string admin_group, std::string reader_group);

  // InvalidArgument naming a group the host does not have.
  Status CheckGroupsExist() const;
  // The admin group's id, for the files vmgroupd writes for people (the
  // catalog, exports); -1 when the host has no such group.
  int AdminGid() const;

  // A user PAM authenticated, by name.
  cim::Peer ForUser(const std::string& user) const;
  // The owner of a unix-socket peer, by the ids SO_PEERCRED gave: `gid` (its
  // process's group) counts beside the user's own groups.
  cim::Peer ForUid(uid_t uid, gid_t gid) const;

 private:
  // The role that membership in `groups` gives.
  cim::Peer Judge(std::string name, const std::vector<gid_t>& groups) const;

  std::string admin_group_, reader_group_;
};

}  // namespace vmgroup::daemon
