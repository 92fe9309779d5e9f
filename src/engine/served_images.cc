#include "engine/served_images.h"

#include <algorithm>

namespace vmgroup::engine {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

Status BusyServing(const std::string& what, const std::string& session, const std::string& thing) {
  return Status::Busy(what + ": " + thing + " is served by backup session " + session +
                      "; end the session first (vmgroup backup end " + session + ")");
}

}  // namespace

void ServedImages::Add(const std::string& session, Hold hold) {
  std::lock_guard lock(mu_);
  holds_[session] = std::move(hold);
}

void ServedImages::Remove(const std::string& session) {
  std::lock_guard lock(mu_);
  holds_.erase(session);
}

Status ServedImages::CheckVms(const std::vector<catalog::VmRecord>& vms, const std::string& what) {
  std::lock_guard lock(mu_);
  for (const auto& [session, hold] : holds_) {
    for (const auto& vm : vms) {
      if (Has(hold.vm_ids, vm.id)) return BusyServing(what, session, "the disks of VM " + vm.name);
    }
  }
  return Status::Ok();
}

Status ServedImages::CheckImages(const std::vector<std::string>& images, const std::string& what) {
  std::lock_guard lock(mu_);
  for (const auto& [session, hold] : holds_) {
    for (const auto& image : images) {
      if (Has(hold.images, image)) return BusyServing(what, session, "image " + image);
    }
  }
  return Status::Ok();
}

Status ServedImages::CheckReferencePoint(const std::string& rp_id, const std::string& what) {
  std::lock_guard lock(mu_);
  for (const auto& [session, hold] : holds_) {
    if (!rp_id.empty() && hold.reference_point == rp_id) {
      return BusyServing(what, session, "the change tracking of reference point " + rp_id);
    }
  }
  return Status::Ok();
}

}  // namespace vmgroup::engine
