// What the numbers and the enumerated strings of the schema's properties
// and parameters mean (classes.h names them): the values services/ writes
// and cli/ reads back, spelt once. Each struct holds an unnamed enum, so
// its values compare with and pass as the integers instances carry.
#pragma once

#include <cstdint>

namespace vmgroup::schema {

// Msvm_ComputerSystem.EnabledState (and the services' EnabledState).
struct EnabledState {
  enum : uint16_t { kEnabled = 2, kDisabled = 3, kPaused = 32768 };
};

// RequestedState of Msvm_ComputerSystem.RequestStateChange, and the VM's
// RequestedState property.
struct RequestedState {
  enum : uint16_t {
    kRunning = 2,
    kOff = 3,
    kShutDown = 4,
    kSaved = 6,
    kQuiesce = 9,  // paused
    kReboot = 10,
    kReset = 11,
    kPaused = 32768,
  };
};

// HealthState of a VM or service.
struct HealthState {
  enum : uint16_t { kOk = 5, kCriticalFailure = 25 };
};

// StatusDescriptions of a VM QEMU paused on an I/O error (shown as Hyper-V
// shows one paused on a critical storage error) starts with this; the
// reason follows.
inline constexpr char kPausedCritical[] = "Paused-Critical: ";
// StatusDescriptions of a VM off and held so by this host's part of an
// apply across hosts (engine/host_applies.h) starts with this; why, and
// what settles it, follow.
inline constexpr char kHeldForApply[] = "Held: ";

// OperationalStatus of a VM or job.
struct OperationalStatus {
  enum : uint16_t { kOk = 2, kDegraded = 3 };
};

// Msvm_ConcreteJob.JobState. 11 (Service) and 12 (Query Pending) are the
// non-terminal states above kCompleted.
struct JobState {
  enum : uint16_t {
    kNew = 2,
    kStarting = 3,
    kRunning = 4,
    kCompleted = 7,
    kTerminated = 8,
    kKilled = 9,
    kException = 10,
    kService = 11,
    kQueryPending = 12,
    kCompletedWithWarnings = 32768,
  };
};

// RequestedState of Msvm_ConcreteJob.RequestStateChange.
struct JobRequestedState {
  enum : uint16_t { kTerminate = 4, kKill = 5 };
};

// CreateSnapshot's SnapshotType and Msvm_SnapshotCollection.Vmgroup_SnapshotType.
struct SnapshotType {
  enum : uint16_t { kStandard = 1, kRecovery = 2, kDiskOnly = 32768 };
};

// ConsistencyLevel of snapshot and reference point settings, and
// Vmgroup_ConsistencyLevel of what was made: 0 (unknown) counts as crash.
struct ConsistencyLevel {
  enum : uint16_t { kUnknown = 0, kApplication = 1, kCrash = 2 };
};

// BeginBackup's Transport: how readers reach a session (0, absent: unix).
struct BackupTransport {
  enum : uint16_t { kUnix = 1, kTcp = 2 };
};

// ReferencePointType: 1 log based (Hyper-V Replica), 2 RCT based (vmgroup's
// dirty bitmaps).
struct ReferencePointType {
  enum : uint16_t { kLogBased = 1, kRctBased = 2 };
};

// DefineCollection's Type.
struct CollectionType {
  enum : uint16_t { kVirtualSystems = 0, kCollections = 1 };
};

// Msvm_VirtualSystemSettingData.VirtualSystemType: a VM's configuration,
// or one of its snapshots.
struct VirtualSystemType {
  static constexpr char kRealized[] = "Microsoft:Hyper-V:System:Realized";
  static constexpr char kSnapshotRealized[] = "Microsoft:Hyper-V:Snapshot:Realized";
  static constexpr char kSnapshotRecovery[] = "Microsoft:Hyper-V:Snapshot:Recovery";
};

}  // namespace vmgroup::schema
