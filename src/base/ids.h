// Identifiers: GUIDs for objects people see (collections, snapshots, VMs, as
// Hyper-V uses), short tags where QEMU limits the length (block node names).
#pragma once

#include <string>
#include <string_view>

namespace vmgroup {

// A random (version 4) GUID in lower case: "3f2b9c1e-8d4a-4e7b-9c2d-1a2b3c4d5e6f".
std::string NewGuid();

// True for the 36-character 8-4-4-4-12 hex form, in either case.
bool IsGuid(std::string_view s);

}  // namespace vmgroup
