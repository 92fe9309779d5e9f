// Judging qcow2 images before anything opens them. qemu-img and QEMU open
// what an image's header names — its backing file, an external data file,
// any "json:" or protocol filename — and the daemon runs them as root, so
// an image from outside (an export, a disk a client names) is read here
// first, with our own header reader (qcow2_header.h), and refused unless
// everything it would make QEMU open is a plain file that the caller can
// place. (`qemu-img info` cannot be the judge: it opens those files.)
//
// Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "storage/qcow2_header.h"

namespace vmgroup::storage {

// The deepest backing chain a host image may have.
inline constexpr int kMaxChainDepth = 256;

struct CheckedImage {
  std::string path;  // as given, and opened
  Qcow2Header header;
  // The file its backing name leads to, joined as QEMU joins it (the
  // absolute name, or the image's directory + "/" + the relative name);
  // empty without a backing file.
  std::string backing_path;
};

// How an image may name its backing file.
enum class BackingNames {
  kRelativeOnly,  // an export's image: only files beside it, as the caller checks
  kAbsoluteToo,   // an image of the host, which may name one by its absolute path
};

// `path` judged before anything opens it: a regular file reached through no
// symbolic link (untrusted_files.h OpenRegular), a qcow2 image of version 2
// or 3, not encrypted, not marked corrupt, with no incompatible feature but
// the dirty bit, the compression type and extended L2 entries, and no
// external data file (neither the feature bit nor the extension). Its
// backing file, when it has one, must be named as a plain file: not
// "json:..." or any "protocol:..." name, no control characters, relative
// unless `names` is kAbsoluteToo; and its format must be given in the
// header, as qcow2 (without it QEMU guesses the format from the content).
//
// InvalidArgument naming `path` and what is wrong; FileNotFound for a
// missing file; IoError when it cannot be read.
Result<CheckedImage> InspectImage(const std::string& path, BackingNames names);

// A host image with its whole backing chain, top first: `path` must be
// absolute; each image is InspectImage'd (kAbsoluteToo), then the file its
// backing name leads to, down to one without a backing file. Never
// qemu-img --backing-chain, which opens them unchecked. InvalidArgument as
// InspectImage, naming the image at fault, for a chain that loops or runs
// deeper than kMaxChainDepth; FileNotFound for a missing one.
Result<std::vector<CheckedImage>> InspectHostChain(const std::string& path);

}  // namespace vmgroup::storage
