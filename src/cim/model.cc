#include "cim/model.h"

#include <cctype>

namespace vmgroup::cim {

bool NameEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string ObjectPath::Namespace() const {
  std::string out;
  for (const auto& part : namespace_) out += (out.empty() ? "" : "/") + part;
  return out;
}

const KeyBinding* ObjectPath::Key(std::string_view name) const { return FindByName(keys, name); }

const Property* Instance::Find(std::string_view name) const { return FindByName(properties, name); }

}  // namespace vmgroup::cim
