// Helpers the catalog's files share (not part of its interface): lists kept
// as JSON text in one column, and reading query results.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "catalog/sqlite.h"

namespace vmgroup::catalog {

std::string ToJson(const std::vector<std::string>& v);
// The strings of a JSON array; anything else reads as none.
std::vector<std::string> FromJson(const std::string& s);
// The first column of every row of `q`, as text.
Result<std::vector<std::string>> Texts(Stmt& q);
// NotFound naming `what` when the last statement changed no row.
Status NotFoundIfUnchanged(Db& db, const std::string& what);

}  // namespace vmgroup::catalog
