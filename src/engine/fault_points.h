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
// Every running member's guest is frozen (application-consistent snapshots
// only; not in kAll): the cut is next.
inline constexpr std::string_view kFrozen = "snapshot.frozen";
// Just before a member is paused and switched (a failure here fails the cut).
inline constexpr std::string_view kMemberSwitch = "cut.member_switch";
// A member is paused and its switch took effect; no member is resumed yet.
inline constexpr std::string_view kMemberSwitched = "cut.member_switched";
// Every member is switched and resumed; the catalog still says Incomplete.
inline constexpr std::string_view kCutDone = "snapshot.cut_done";
// The snapshot is Complete in the catalog.
inline constexpr std::string_view kCommitted = "snapshot.committed";

// Applying a snapshot: every member is off and has its new overlays; the
// catalog still names the old images. Subject: the snapshot id.
inline constexpr std::string_view kApplyPrepared = "apply.prepared";
// The apply is committed; the discarded images are not yet removed.
inline constexpr std::string_view kApplyCommitted = "apply.committed";
// (The driver has a point of its own inside each QEMU start, reached by an
// apply for each member with memory state: hypervisor::kFaultStarted.)

// Destroying a snapshot: its merges are stored and a member's extra
// children no longer depend on its frozen images; nothing is merged yet
// (a failure here cancels the destroy). Subject: the member VM's name.
inline constexpr std::string_view kDestroyMemberDetached = "destroy.member_detached";
// A member's images are merged; the catalog still has the snapshot (a
// failure here leaves it being destroyed, finished later). Subject: VM name.
inline constexpr std::string_view kDestroyMemberMerged = "destroy.member_merged";
// The catalog forgot the snapshot; the unused files are not yet deleted.
inline constexpr std::string_view kDestroyCommitted = "destroy.committed";

// Converting a snapshot to a reference point: the reference point is
// recorded; its snapshot's destroy has not begun (a crash here leaves a
// record that recovery takes back). Subject: the snapshot id.
inline constexpr std::string_view kRefpointRecorded = "refpoint.recorded";

// Exporting a snapshot: a member's disk is copied into the export and
// synced; the manifest is not written yet. Subject: the member VM's name.
inline constexpr std::string_view kExportDiskCopied = "export.disk_copied";

// Restoring an export: a file is copied into a VM's run directory; the VM
// may not be defined yet. Subject: the VM's name (as restored).
inline constexpr std::string_view kRestoreFileCopied = "restore.file_copied";
// A restored VM is defined; its group may not be yet. Subject: its name.
inline constexpr std::string_view kRestoreVmDefined = "restore.vm_defined";

// A backup session took its snapshot (Complete); nothing is served yet.
// Subject: the session id.
inline constexpr std::string_view kBackupSnapshotTaken = "backup.snapshot_taken";
// A backup session: a member's frozen images are served (its intent is
// recorded; other members may not be served yet). Subject: the VM's name.
inline constexpr std::string_view kBackupMemberServed = "backup.member_served";
// A backup session stopped serving every member; its snapshot is not
// destroyed or converted yet. Subject: the session id.
inline constexpr std::string_view kBackupStopped = "backup.stopped";

// A snapshot across hosts, on its coordinator (spanning_snapshots.h,
// spanning_cut.h). Subject: the snapshot id, or the host's name for
// kSpanHostCommitted. The crash test of a coordinator walks them in order.
// Its intent (with every host's part) is recorded; no host is asked yet.
inline constexpr std::string_view kSpanIntentRecorded = "span.intent_recorded";
// Every host prepared its part; none paused.
inline constexpr std::string_view kSpanPrepared = "span.prepared";
// Every host paused its members under the lease (and cut, by default).
inline constexpr std::string_view kSpanPaused = "span.paused";
// Every host resumed its members; no part committed.
inline constexpr std::string_view kSpanResumed = "span.resumed";
// One host committed its part (others may not have yet).
inline constexpr std::string_view kSpanHostCommitted = "span.host_committed";
// Every host committed; the coordinator's record is not Complete yet.
inline constexpr std::string_view kSpanAllCommitted = "span.all_committed";
inline constexpr std::array<std::string_view, 6> kSpanAll = {
    kSpanIntentRecorded, kSpanPrepared,      kSpanPaused,
    kSpanResumed,        kSpanHostCommitted, kSpanAllCommitted};
// An export across hosts, on its coordinator. Subject: the snapshot id.
// Its intent is recorded; no host is asked yet.
inline constexpr std::string_view kSpanExportIntentRecorded = "span.export_intent_recorded";
// Every host exported its part; the manifest across hosts is not written.
inline constexpr std::string_view kSpanExportPartsDone = "span.export_parts_done";
// The manifest across hosts is written; the intent is not forgotten yet.
inline constexpr std::string_view kSpanExportWritten = "span.export_written";
inline constexpr std::array<std::string_view, 3> kSpanExportAll = {
    kSpanExportIntentRecorded, kSpanExportPartsDone, kSpanExportWritten};
// A conversion across hosts into a reference point, on its coordinator.
// Subject: the snapshot id. Every host checked its part and the record says
// kConverting; no host is asked to convert yet.
inline constexpr std::string_view kSpanConvertRecorded = "span.convert_recorded";
// One host converted its part (others may not have yet).
inline constexpr std::string_view kSpanHostConverted = "span.host_converted";
inline constexpr std::array<std::string_view, 2> kSpanConvertAll = {kSpanConvertRecorded,
                                                                    kSpanHostConverted};
// An apply across hosts, on its coordinator. Subject: the snapshot id.
// Every host prepared its part (members stopped, overlays made); the
// decision is not recorded yet: a restart takes every part back.
inline constexpr std::string_view kSpanApplyPrepared = "span.apply_prepared";
// The decision to commit is recorded; no host is told yet: a restart
// commits every part.
inline constexpr std::string_view kSpanApplyDecided = "span.apply_decided";
// One host committed its part (others may not have yet).
inline constexpr std::string_view kSpanHostApplied = "span.host_applied";
inline constexpr std::array<std::string_view, 3> kSpanApplyAll = {
    kSpanApplyPrepared, kSpanApplyDecided, kSpanHostApplied};

// The snapshot protocol's points, in order (crash_recovery_test walks them).
inline constexpr std::array<std::string_view, 7> kAll = {
    kIntentRecorded, kMemberPrepared, kPrepared, kMemberSwitch,
    kMemberSwitched, kCutDone,        kCommitted};

}  // namespace vmgroup::engine::fault
