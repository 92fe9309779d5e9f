// The catalog's schema as an ordered list of migrations. Migration i (from 1)
// brings a database from user_version i-1 to i, in one transaction. Never
// edit a migration that has shipped; append a new one.
#pragma once

#include <span>
#include <string_view>

namespace vmgroup::catalog {

std::span<const std::string_view> Migrations();

}  // namespace vmgroup::catalog
