// Trackings held in memory around a switch. QEMU stores an image's
// persistent dirty bitmaps into it when a switch makes the image read-only,
// which happens inside the pause: on one VM with two 16 MiB disks the
// pause took 1.5 ms without a bitmap and 3.2-4 ms with one per disk (the
// bitmaps' writes and flushes), so a recovery snapshot paused twice as long
// as a disk-only one. Around a switch, therefore, the trackings of the
// active images live in transient twins: HoldTrackings moves them there
// while the guest runs, before the pause, and StoreHeldTrackings, once the
// guest runs again, stores each twin back into its image, now frozen, as
// the persistent bitmap it was. Storing reopens the frozen image
// read-write and read-only again, which holds the disk's I/O back (not its
// vCPUs) for the few milliseconds the write takes.
//
// A twin lives in QEMU's memory only. A QEMU that dies holding one loses
// that tracking, as it would leave a persistent bitmap unsaved (and so
// untrusted): the image then has no tracking of that name, and whoever asks
// for it (an incremental copy, a backup session) is refused, never served
// a wrong answer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hypervisor/qemu/qmp_client.h"

namespace vmgroup::hypervisor::qemu {

// A held twin of tracking T is the transient bitmap "T.held" on T's node.
inline constexpr std::string_view kHeldSuffix = ".held";

// Moves every tracking of the qcow2 nodes `nodes` into a held twin, all in
// one transaction (all or none): every persistent, recording, trusted dirty
// bitmap in vmgroup's namespace. A node whose name QEMU generated (opened
// from an image header) keeps its trackings: blockdev-reopen refuses such a
// node, so they could not be stored back; a switch pays for those as it
// did. OK when there is nothing to move.
Status HoldTrackings(QmpClient& c, const std::vector<std::string>& nodes, Deadline d);

// Stores every held twin in the VM's block graph back into its node as the
// persistent bitmap it was, and removes the twin; a read-only node is
// reopened read-write for that and read-only again (its image then holds
// the bitmap). OK when there is none; safe to call again after a failure.
Status StoreHeldTrackings(QmpClient& c, Deadline d);

}  // namespace vmgroup::hypervisor::qemu
