// The cut (DESIGN §4 step 4). Each running member is paused and its disks
// switched to their prepared overlays in one transaction, the two requests
// sent together; the requests to all members go out back to back from one
// thread, so every member is reached within microseconds while the
// hypervisors work in parallel. Once every member has switched, the members
// paused for the cut are resumed. No member resumes before every member is
// paused, so all the frozen images hold the group's state at one instant.
// The whole window has a deadline. If any member fails, or the deadline
// passes before every member has switched, the members that may have
// switched are reverted while still paused, and only then is anyone
// resumed: every VM runs on exactly the images it ran on before.
//
// Members that are already paused (by the operator) take part in the switch
// but are neither paused nor resumed. A member with `save_state` has its
// memory state saved as it resumes (only if the whole cut succeeded): its
// pause then lasts until QEMU has written its device state and runs it again.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"

namespace vmgroup::engine {

struct CutMember {
  std::string name;  // for messages and fault points
  std::shared_ptr<hypervisor::Vm> vm;
  bool pause = true;  // false for a member already paused
  std::vector<hypervisor::Overlay> overlays;
  // Save the member's memory state as it is at the cut (Vm::SendResume;
  // needs pause and Vm::PrepareStateSave).
  bool save_state = false;
  std::string vm_id;  // the VM's id: for those that report the cut by VM (host_cuts.h)
};

struct CutTiming {
  int64_t cut_time_us = 0;  // wall clock when the member's switch returned
  int64_t pause_us = 0;     // pause sent -> resume answered (0 if not paused by the cut)
  // What the pause is made of, in microseconds after the pause was sent (0
  // if not paused by the cut): the pause answered (vCPUs stopped, in-flight
  // I/O drained and flushed; the switch's answer when the VM reports none
  // apart), the switch answered, and the resume sent (once every member
  // switched); pause_us ends it. Replies are collected member after member,
  // so each is when this side read it: no earlier than it arrived, and no
  // earlier than the previous member's last reply was read.
  int64_t stopped_us = 0;
  int64_t switched_us = 0;
  int64_t resume_sent_us = 0;
};

struct CutOutcome {
  // OK when every member switched. Otherwise names the first member that
  // failed and why; every member was then reverted (see revert_status).
  Status status;
  // Not OK if a revert itself failed: that member's state needs recovery.
  Status revert_status;
  std::vector<CutTiming> timings;  // by member index
  int64_t window_us = 0;           // first pause sent -> last resume answered
};

// REQUIRES: every member's overlays are open (Vm::OpenOverlays).
CutOutcome ExecuteCut(Env* env, const std::vector<CutMember>& members, const std::string& tracking,
                      Duration deadline_budget);

}  // namespace vmgroup::engine
