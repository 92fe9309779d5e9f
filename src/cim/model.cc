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

const KeyBinding* ObjectPath::Key(std::string_view name) const {
  for (const auto& k : keys) {
    if (NameEquals(k.name, name)) return &k;
  }
  return nullptr;
}

const Property* Instance::Find(std::string_view name) const {
  for (const auto& p : properties) {
    if (NameEquals(p.name, name)) return &p;
  }
  return nullptr;
}

}  // namespace vmgroup::cim
