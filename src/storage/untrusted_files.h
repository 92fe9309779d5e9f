// Files whose names or content come from outside the daemon (a client's
// request, an export that sat on backup storage): opened only when they are
// regular files reached through no symbolic link at all, read with a bound,
// copied byte for byte with their checksum, and handed to people with the
// access they are meant to have. The daemon runs as root: a name that leads
// through a link, or to a device or a FIFO, could make it read, block on or
// hand out any file of the host.
//
// Thread-safe: every call works on its own file descriptors.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "storage/checksum.h"

namespace vmgroup::storage {

// Opens `path` read-only when it names a regular file and no component of
// it is a symbolic link (openat2 RESOLVE_NO_SYMLINKS: what the kernel finds
// is what the name says). FileNotFound when it is missing; InvalidArgument,
// naming `path`, for a link on the way, or anything but a regular file
// (never blocking on a FIFO); IoError otherwise.
Result<UniqueFd> OpenRegular(const std::string& path);

// The whole of the regular file `path` (OpenRegular), refused with
// InvalidArgument before anything is read when it holds more than
// `max_bytes`: "<what> <path> is N bytes; at most M are read".
Result<std::string> ReadBounded(const std::string& path, uint64_t max_bytes,
                                const std::string& what);

// Up to `max_bytes` from the start of the regular file `path` (OpenRegular):
// fewer when the file is shorter.
Result<std::string> ReadHead(const std::string& path, uint64_t max_bytes);

// Copies the regular file `from` (OpenRegular) to `to`, a new file (mode
// 0600; AlreadyExists if it exists), keeping runs of zeros as holes, and
// puts it on stable storage. Returns the digest of the bytes copied: what
// the copy holds, whatever `from` may turn into meanwhile. On failure `to`
// is removed.
Result<FileDigest> CopyRegular(const std::string& from, const std::string& to);

// What `path` itself is, not following it if it is a symbolic link.
enum class FileKind { kMissing, kDirectory, kRegular, kLink, kOther };
// IoError when it cannot be told (a parent not searchable, ...).
Result<FileKind> KindOf(const std::string& path);

// Gives the file or directory `path` (not followed if it is a link) the
// permission bits `mode` and, when `gid` >= 0, the group `gid` (its owner
// stays).
Status SetAccess(const std::string& path, unsigned mode, int gid);

}  // namespace vmgroup::storage
