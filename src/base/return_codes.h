// The Hyper-V ReturnValue a Status becomes, in the two families the reference
// documents (shared/reference/hyperv-collection-api.md §1.4). Which family a
// method uses is part of its declaration in services/.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace vmgroup {

// Family A (DMTF style: snapshot and reference-point methods).
inline constexpr uint32_t kRcCompleted = 0;
inline constexpr uint32_t kRcNotSupported = 1;
inline constexpr uint32_t kRcFailed = 2;
inline constexpr uint32_t kRcTimeout = 3;
inline constexpr uint32_t kRcInvalidParameter = 4;
inline constexpr uint32_t kRcInvalidState = 5;
inline constexpr uint32_t kRcInvalidType = 6;
inline constexpr uint32_t kRcJobStarted = 4096;

// Family B (Hyper-V style: collection management and some per-VM methods).
inline constexpr uint32_t kRcBFailed = 32768;
inline constexpr uint32_t kRcBAccessDenied = 32769;
inline constexpr uint32_t kRcBNotSupported = 32770;
inline constexpr uint32_t kRcBTimeout = 32772;
inline constexpr uint32_t kRcBInvalidParameter = 32773;
inline constexpr uint32_t kRcBSystemInUse = 32774;
inline constexpr uint32_t kRcBInvalidState = 32775;
inline constexpr uint32_t kRcBIncorrectType = 32776;
inline constexpr uint32_t kRcBNotAvailable = 32777;
inline constexpr uint32_t kRcBFileNotFound = 32779;

uint32_t ReturnCodeA(const Status& s);
uint32_t ReturnCodeB(const Status& s);

// On a client, the Status a family-A ReturnValue other than 0 and 4096
// stands for: the code ReturnCodeA maps to it (the first, where several
// do), with `why`, the server's reason.
Status StatusOfReturnCodeA(uint32_t code, const std::string& why);
// The same for family B (the collection management service's):
// InvalidArgument for 32773, which stands for an unknown group or VM too.
Status StatusOfReturnCodeB(uint32_t code, const std::string& why);

}  // namespace vmgroup
