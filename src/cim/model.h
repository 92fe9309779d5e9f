// The CIM data model as CIM-XML carries it (DSP0201): object paths, values
// and instances. Values stay text here, exactly as they travel; the class
// declarations (services/) give them their types when a request is checked.
#pragma once

#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace vmgroup::cim {

struct ObjectPath;

// One key of an instance path. A reference key carries the referenced path.
struct KeyBinding {
  enum class Kind { kString, kBoolean, kNumeric, kReference };
  std::string name;
  Kind kind = Kind::kString;
  std::string value;            // for all kinds but kReference
  std::vector<ObjectPath> ref;  // exactly one element for kReference
};

// An instance path, or a class path when `keys` is empty.
struct ObjectPath {
  std::string host;                     // empty for local paths
  std::vector<std::string> namespace_;  // {"root", "virtualization", "v2"}
  std::string class_name;
  std::vector<KeyBinding> keys;

  // "root/virtualization/v2".
  std::string Namespace() const;
  // The key named `name` (CIM names compare case-insensitively), or null.
  const KeyBinding* Key(std::string_view name) const;
};

// A parameter or property value as sent: nothing, one VALUE, a VALUE.ARRAY,
// or one or more references (VALUE.REFERENCE, VALUE.REFARRAY, INSTANCENAME,
// CLASSNAME; a CLASSNAME is a path with no keys).
struct Value {
  enum class Kind { kNull, kScalar, kArray, kReference, kReferenceArray };
  Kind kind = Kind::kNull;
  std::string scalar;
  std::vector<std::string> array;
  std::vector<ObjectPath> refs;

  static Value Scalar(std::string s) { return {Kind::kScalar, std::move(s), {}, {}}; }
  static Value Array(std::vector<std::string> a) { return {Kind::kArray, {}, std::move(a), {}}; }
  static Value Reference(ObjectPath p) { return {Kind::kReference, {}, {}, {std::move(p)}}; }
};

struct Property {
  std::string name;
  std::string type;  // CIM type name: "string", "uint16", "datetime", "reference", ...
  bool is_array = false;
  Value value;
};

struct Instance {
  std::string class_name;
  std::vector<Property> properties;

  // The property named `name` (case-insensitive), or null.
  const Property* Find(std::string_view name) const;
};

// True if two CIM names are equal ignoring ASCII case.
bool NameEquals(std::string_view a, std::string_view b);

// The element of `items` whose `name` equals `name` as CIM names compare, or null.
template <typename Items>
auto FindByName(Items& items, std::string_view name) -> decltype(&*std::begin(items)) {
  for (auto& item : items) {
    if (NameEquals(item.name, name)) return &item;
  }
  return nullptr;
}

}  // namespace vmgroup::cim
