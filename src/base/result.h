// Result<T>: a T, or the Status that explains why there is none.
// (std::expected arrives only with C++23.)
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "base/status.h"

namespace vmgroup {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok() && "a Result is built from an error Status only");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  // By value, so `for (auto& x : *Make())` does not dangle into a temporary.
  T value() && { return std::get<T>(std::move(v_)); }
  // The value, or `fallback` when there is none.
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace vmgroup

#define VMG_CONCAT_INNER(a, b) a##b
#define VMG_CONCAT(a, b) VMG_CONCAT_INNER(a, b)
// Declares `lhs` from the value of the Result `expr`, or returns its error.
#define VMG_ASSIGN_OR_RETURN(lhs, expr) \
  VMG_ASSIGN_OR_RETURN_IMPL(VMG_CONCAT(vmg_result_, __LINE__), lhs, expr)
#define VMG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
