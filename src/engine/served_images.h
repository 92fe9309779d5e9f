// ServedImages: the frozen images backup sessions serve to readers now
// (backup_session.h). While a session lasts, an operation that would write
// into one of them, merge it away or restart its VM is refused with Busy,
// so that a reader never sees an image change under it; snapshots, exports
// and reads of the group go on, however slowly the reader reads.
//
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "catalog/records.h"

namespace vmgroup::engine {

class ServedImages {
 public:
  // What one session holds.
  struct Hold {
    std::vector<std::string> vm_ids;
    std::vector<std::string> images;
    std::string reference_point;  // the base of its changed blocks, or ""
  };

  // Session `session` serves `hold` from now on (replacing what it held).
  void Add(const std::string& session, Hold hold);
  // It serves nothing any more; nothing happens when it held nothing.
  void Remove(const std::string& session);

  // Busy, naming the session, when one of `vms` is served: `what` (e.g.
  // "applying a snapshot") would restart it.
  Status CheckVms(const std::vector<catalog::VmRecord>& vms, const std::string& what);
  // Busy when one of `images` is served: `what` would change or remove it.
  Status CheckImages(const std::vector<std::string>& images, const std::string& what);
  // Busy when a session serves the changes since reference point `rp_id`.
  Status CheckReferencePoint(const std::string& rp_id, const std::string& what);

 private:
  std::mutex mu_;
  std::map<std::string, Hold> holds_;  // guarded by mu_, by session id
};

}  // namespace vmgroup::engine
