#include "daemon/access.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

namespace vmgroup::daemon {
namespace {

std::optional<gid_t> GroupId(const std::string& name) {
  std::vector<char> buf(4096);
  while (true) {
    group g{}, *found = nullptr;
    const int rc = ::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 24)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || !found) return std::nullopt;
    return g.gr_gid;
  }
}

struct Account {
  std::string name;
  gid_t gid = 0;
};

template <typename Lookup>
std::optional<Account> FindAccount(Lookup lookup) {
  std::vector<char> buf(4096);
  while (true) {
    passwd p{}, *found = nullptr;
    const int rc = lookup(&p, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 24)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || !found) return std::nullopt;
    return Account{p.pw_name, p.pw_gid};
  }
}

// `user`'s groups: `primary` and every group that lists it.
std::vector<gid_t> GroupsOf(const std::string& user, gid_t primary) {
  std::vector<gid_t> groups(64);
  while (true) {
    int n = static_cast<int>(groups.size());
    if (::getgrouplist(user.c_str(), primary, groups.data(), &n) >= 0) {
      groups.resize(static_cast<size_t>(n));
      return groups;
    }
    if (n <= static_cast<int>(groups.size()) || n > 65536) return {primary};
    groups.resize(static_cast<size_t>(n));
  }
}

}  // namespace

Access::Access(std::string admin_group, std::string reader_group)
    : admin_group_(std::move(admin_group)), reader_group_(std::move(reader_group)) {}

int Access::AdminGid() const {
  const std::optional<gid_t> gid = GroupId(admin_group_);
  return gid ? static_cast<int>(*gid) : -1;
}

Status Access::CheckGroupsExist() const {
  for (const std::string* g : {&admin_group_, &reader_group_}) {
    if (!g->empty() && !GroupId(*g)) {
      return Status::InvalidArgument("there is no group " + *g + " on this host (groupadd " + *g +
                                     ")");
    }
  }
  return Status::Ok();
}

cim::Peer Access::Judge(std::string name, const std::vector<gid_t>& groups) const {
  cim::Peer peer{std::move(name), cim::Role::kNone, admin_group_, reader_group_};
  auto member = [&](const std::string& group) {
    if (group.empty()) return false;
    const std::optional<gid_t> gid = GroupId(group);
    return gid && std::find(groups.begin(), groups.end(), *gid) != groups.end();
  };
  if (member(admin_group_)) {
    peer.role = cim::Role::kAdmin;
  } else if (member(reader_group_)) {
    peer.role = cim::Role::kReader;
  }
  return peer;
}

cim::Peer Access::ForUser(const std::string& user) const {
  auto account = FindAccount([&](passwd* p, char* buf, size_t size, passwd** found) {
    return ::getpwnam_r(user.c_str(), p, buf, size, found);
  });
  if (!account) return Judge(user, {});
  return Judge(user, GroupsOf(account->name, account->gid));
}

cim::Peer Access::ForUid(uid_t uid, gid_t gid) const {
  if (uid == 0) return cim::Peer{"root", cim::Role::kAdmin, admin_group_, reader_group_};
  auto account = FindAccount([&](passwd* p, char* buf, size_t size, passwd** found) {
    return ::getpwuid_r(uid, p, buf, size, found);
  });
  const std::string id = "uid " + std::to_string(uid);
  if (!account) return Judge(id, {gid});
  std::vector<gid_t> groups = GroupsOf(account->name, gid);
  groups.push_back(account->gid);
  return Judge(account->name + " (" + id + ")", groups);
}

}  // namespace vmgroup::daemon
