// QemuImg: the qcow2 image operations vmgroup needs, done by qemu-img.
// Used for offline work (stopped VMs), for preparing overlay files before a
// cut, and for verifying chains. Images in use by a running QEMU are read
// with -U (force share): qemu-img refuses the lock otherwise.
//
// Thread-safe: each call runs its own qemu-img process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/result.h"

namespace vmgroup::storage {

struct ImageInfo {
  std::string filename;
  std::string format;
  uint64_t virtual_size = 0;
  std::string backing_filename;  // empty for the base of a chain
  std::vector<std::string> bitmaps;
};

// Longest one disk's copy (Convert) may take: far beyond any disk vmgroup
// runs (a TiB at 200 MB/s is under 2 hours), so only a hung copy reaches it.
inline constexpr Duration kDiskCopyTimeout = std::chrono::hours(12);

class QemuImg {
 public:
  explicit QemuImg(Env* env) : env_(env) {}

  // Creates an empty qcow2 image of `size_bytes`. AlreadyExists if `path` exists.
  Status Create(const std::string& path, uint64_t size_bytes);

  // Creates a qcow2 overlay at `path` whose backing file is `backing` (qcow2),
  // recorded by absolute path, or as `recorded_as` when given (a path
  // relative to `path`'s directory, so that the pair can move together).
  // Works while `backing` is in use by QEMU. AlreadyExists if `path` exists
  // (a stale file is never silently reused); FileNotFound if `backing` is
  // missing.
  Status CreateOverlay(const std::string& backing, const std::string& path,
                       const std::string& recorded_as = "");

  // Merges `path` into its backing file (the image below it), leaving `path`
  // in place. For stopped VMs only: the images must not be in use.
  Status Commit(const std::string& path);

  // Adds persistent dirty bitmap `name` to `path`: from now on it marks
  // every cluster written to `path`, by a Commit into it too. OK when
  // `path` has a bitmap of that name already (kept as it is). For stopped
  // VMs only: `path` must not be in use.
  Status AddBitmap(const std::string& path, const std::string& name);

  // Makes `backing` (empty: none) the backing file of `path`. Safe mode
  // first copies into `path` every cluster whose content would otherwise
  // change, so `path` reads the same before and after, at any moment, and
  // running it again is harmless. `unsafe` only rewrites the header: for
  // when the new backing already reads the same as the old one.
  // `path` must not be in use; its backing images may be.
  Status Rebase(const std::string& path, const std::string& backing, bool unsafe);

  // Writes to `dest` (a new file) one standalone qcow2 image that reads the
  // same as `image` through its whole backing chain: a full copy of a
  // disk's content at one point. `image` may be in use by a running QEMU.
  // `dest` is written back to disk while it is copied (qemu-img itself
  // never flushes), so a SyncFile after has little left to do.
  // AlreadyExists if `dest` exists; on failure `dest` is removed.
  //
  // With `backing` (a qcow2 image, named relative to `dest`'s directory or
  // absolute), `dest` is instead an overlay of `backing` holding only what
  // `image` holds itself, above its own backing file: an incremental copy,
  // right when `backing` reads the same as `image`'s backing file.
  Status Convert(const std::string& image, const std::string& dest, Duration timeout,
                 const std::string& backing = "");

  // How many bytes of guest data `path` itself holds (not its backing
  // chain): what an image adds to the one below it.
  Result<uint64_t> OwnDataBytes(const std::string& path);

  // `path` alone (no chain).
  Result<ImageInfo> Info(const std::string& path);
  // The chain from `path` down to its base: element 0 is `path` itself.
  // Like every call here it opens what the images name (backing files,
  // data files, json: names): only for images vmgroup made or judged first
  // (image_check.h), never for a path from outside.
  Result<std::vector<ImageInfo>> Chain(const std::string& path);

  // OK when `qemu-img check` finds no errors and no leaks in `path`.
  Status Check(const std::string& path);

 private:
  // Runs `argv` (qemu-img and its arguments), killed if the calling thread
  // ends first; IoError with its message when it exits non-zero.
  Result<CommandOutput> RunOk(const std::vector<std::string>& argv,
                              Duration timeout = std::chrono::minutes(5));
  // `qemu-img info` of `path`, with its chain when `chain`.
  Result<std::vector<ImageInfo>> Describe(const std::string& path, bool chain);

  Env* env_;
};

}  // namespace vmgroup::storage
