// Named fault points of the group snapshot protocol, in the order they are
// reached. Env::Hit(point, subject) is called at each; the crash-recovery
// tests end the process at every one in turn, and the failure tests make one
// member's step fail. `subject` is the member VM's name for the per-member
// points and the snapshot id for the others.
#pragma once

#include <array>
#include <string_view>

namespace vmgroup::engine::fault {

// The snapshot's intent is in the catalog; no file or VM touched yet.
inline constexpr std::string_view kIntentRecorded = "snapshot.intent_recorded";
// A member's overlay files exist and, if it runs, are opened in QEMU.
inline constexpr std::string_view kMemberPrepared = "snapshot.member_prepared";
// Every overlay is prepared; the pause is next.
inline constexpr std::string_view kPrepared = "snapshot.prepared";
// A member is paused (every member paused before any switches).
inline constexpr std::string_view kMemberPaused = "cut.member_paused";
// Just before a member's switch transaction (a failure here is a failed switch).
inline constexpr std::string_view kMemberSwitch = "cut.member_switch";
// A member's switch took effect; it is still paused.
inline constexpr std::string_view kMemberSwitched = "cut.member_switched";
// Every member is switched and resumed; the catalog still says Incomplete.
inline constexpr std::string_view kCutDone = "snapshot.cut_done";
// The snapshot is Complete in the catalog.
inline constexpr std::string_view kCommitted = "snapshot.committed";

inline constexpr std::array<std::string_view, 8> kAll = {
    kIntentRecorded, kMemberPrepared, kPrepared, kMemberPaused,
    kMemberSwitch,   kMemberSwitched, kCutDone,  kCommitted};

}  // namespace vmgroup::engine::fault
