#include "cim/provider.h"

#include <cstdio>
#include <cstdlib>

namespace vmgroup::cim {
namespace {

// The value a key of `path` must have to match `inst`'s property.
bool KeyMatches(const KeyBinding& key, const Instance& inst) {
  const Property* p = inst.Find(key.name);
  if (!p) return false;
  if (key.kind == KeyBinding::Kind::kReference) {
    return !key.ref.empty() && !p->value.refs.empty() && SamePath(key.ref[0], p->value.refs[0]);
  }
  if (p->value.kind != Value::Kind::kScalar) return false;
  // Booleans travel in any case.
  if (key.kind == KeyBinding::Kind::kBoolean) return NameEquals(key.value, p->value.scalar);
  return key.value == p->value.scalar;
}

}  // namespace

Result<Instance> Provider::Get(const ObjectPath& path) {
  VMG_ASSIGN_OR_RETURN(auto all, Enumerate());
  for (auto& inst : all) {
    bool match = !path.keys.empty();
    for (const auto& k : path.keys) match = match && KeyMatches(k, inst);
    if (match) return std::move(inst);
  }
  return Status::NotFound("no " + spec().name + " instance has those keys");
}

Status Provider::ForEach(const std::function<void(Instance)>& each) {
  VMG_ASSIGN_OR_RETURN(auto all, Enumerate());
  for (auto& inst : all) each(std::move(inst));
  return Status::Ok();
}

Result<MethodResult> Provider::Invoke(const MethodSpec& method, const ObjectPath&,
                                      const std::map<std::string, Value>&) {
  return Status::NotSupported(spec().name + "." + method.name + " is not implemented");
}

InstanceBuilder::InstanceBuilder(const ClassSpec& spec) {
  inst_.class_name = spec.name;
  inst_.properties.reserve(spec.properties.size());
  for (const auto& p : spec.properties) {
    inst_.properties.push_back({p.name, p.type, p.is_array, Value{}});
  }
}

Property& InstanceBuilder::Slot(std::string_view name) {
  // Providers name properties by the declaration's own constants: an exact
  // match first spares a case-blind comparison with every property.
  for (auto& p : inst_.properties) {
    if (p.name == name) return p;
  }
  Property* p = FindByName(inst_.properties, name);
  if (!p) {
    std::fprintf(stderr, "%s declares no property %.*s\n", inst_.class_name.c_str(),
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  return *p;
}

InstanceBuilder& InstanceBuilder::Str(std::string_view name, std::string value) {
  Slot(name).value = Value::Scalar(std::move(value));
  return *this;
}

InstanceBuilder& InstanceBuilder::Int(std::string_view name, int64_t value) {
  return Str(name, std::to_string(value));
}

InstanceBuilder& InstanceBuilder::Bool(std::string_view name, bool value) {
  return Str(name, value ? "TRUE" : "FALSE");
}

InstanceBuilder& InstanceBuilder::Strs(std::string_view name, std::vector<std::string> values) {
  Slot(name).value = Value::Array(std::move(values));
  return *this;
}

InstanceBuilder& InstanceBuilder::Ints(std::string_view name, const std::vector<int64_t>& values) {
  std::vector<std::string> text;
  for (int64_t v : values) text.push_back(std::to_string(v));
  return Strs(name, std::move(text));
}

InstanceBuilder& InstanceBuilder::Ref(std::string_view name, ObjectPath path) {
  Slot(name).value = Value::Reference(std::move(path));
  return *this;
}

bool SamePath(const ObjectPath& a, const ObjectPath& b) {
  if (!NameEquals(a.class_name, b.class_name) || a.keys.size() != b.keys.size()) return false;
  for (const auto& k : a.keys) {
    const KeyBinding* other = b.Key(k.name);
    if (!other) return false;
    if (k.kind == KeyBinding::Kind::kReference || other->kind == KeyBinding::Kind::kReference) {
      if (k.ref.empty() || other->ref.empty() || !SamePath(k.ref[0], other->ref[0])) return false;
    } else if (k.value != other->value) {
      return false;
    }
  }
  return true;
}

}  // namespace vmgroup::cim
