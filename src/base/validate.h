// Checks for values that come from outside the daemon (a CIM request, the
// command line, an export's files): one definition of what a name, a whole
// number and a size may be, used wherever such a value enters, so that the
// CLI, the CIM services and restore refuse the same things with the same
// words. Every error is InvalidArgument and names the value (`what`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmgroup {

// Longest name (of a VM, a group, a snapshot label) in bytes of UTF-8.
inline constexpr size_t kMaxNameBytes = 256;

// OK if `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing past U+10FFFF).
bool IsValidUtf8(std::string_view text);

// `text` with every byte that does not start a well-formed UTF-8 character
// replaced by U+FFFD: for handing a value that was stored before names were
// checked to a format that needs valid UTF-8 (XML, JSON). Valid text comes
// back unchanged.
std::string ToValidUtf8(std::string_view text);

// OK for a name a person gave: not empty, at most `max_bytes`, valid
// UTF-8, no control characters (C0, DEL, C1: no newline, tab or escape
// sequence can reach a terminal, a log line or CIM-XML), and no leading or
// trailing white space.
Status CheckName(std::string_view what, std::string_view name, size_t max_bytes = kMaxNameBytes);

// OK for free text that may be empty (a kernel command line, a
// description): valid UTF-8 without control characters, at most `max_bytes`.
Status CheckText(std::string_view what, std::string_view text, size_t max_bytes);

// A decimal whole number, all of `text` (no sign but '-', no spaces, no
// suffix), within [min, max]: "64abc", "", "1e3" and out-of-range values
// are refused, never clamped.
Result<int64_t> ParseInt(std::string_view what, std::string_view text, int64_t min, int64_t max);

// A size in bytes: a whole number with an optional binary suffix K, M, G, T
// (or KiB, MiB, GiB, TiB; B for bytes), within [min, max]. "16m" is not a
// size (suffixes are upper case, as qemu-img prints them).
Result<uint64_t> ParseSize(std::string_view what, std::string_view text, uint64_t min,
                           uint64_t max);

// `text` with every byte that is not printable ASCII (a control
// character, or any byte of a multi-byte character when `ascii_only`)
// written as \xNN: for putting a value that failed CheckName into a message.
std::string Printable(std::string_view text, bool ascii_only = false);

}  // namespace vmgroup
