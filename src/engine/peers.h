// The other hosts a coordinator reaches (issue 20): each a vmgroupd this
// one's configuration names (vmgroupd's --peer NAME=URL), reached by
// remote/ over CIM-XML with the credentials the configuration keeps. The
// engine knows a peer only by its name; how it is reached is not its
// business.
//
// A group's member on a peer is a VM of that peer, named by the peer and
// the VM's UUID. The peer holds its part of the group as a collection of
// its own with the group's id (host_cuts.h), which Join and Leave keep.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"

namespace vmgroup::engine {

class CutHost;  // spanning_cut.h (which includes what includes this)

class Peers {
 public:
  virtual ~Peers() = default;

  // OK when `host` is a configured peer; NotFound saying what to configure
  // otherwise. Nothing is sent to it.
  virtual Status Known(const std::string& host) = 0;

  // A CutHost for one snapshot's steps on `host` (its calls must not
  // overlap; one per snapshot). NotFound as Known says; it connects lazily,
  // so a peer that cannot be reached fails its first step.
  virtual Result<std::unique_ptr<CutHost>> Connect(const std::string& host) = 0;

  // Makes VM `vm_id` of `host` a member of the host's part of group
  // `group_id`: a collection of that id, named `group_name`, defined on the
  // host if it has none. OK when it is a member already. The host's error
  // (a VM it does not have: NotFound) named after the host; Unavailable
  // when it cannot be reached.
  virtual Status Join(const std::string& host, const std::string& group_id,
                      const std::string& group_name, const std::string& vm_id) = 0;

  // Takes VM `vm_id` out of the host's part of group `group_id`; OK when
  // it is no member (or the host has no part of the group).
  virtual Status Leave(const std::string& host, const std::string& group_id,
                       const std::string& vm_id) = 0;
};

}  // namespace vmgroup::engine
