// Helpers the catalog's files share (not part of its interface): lists kept
// as JSON text in one column, and reading query results.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "catalog/catalog.h"
#include "catalog/sqlite.h"

namespace vmgroup::catalog {

std::string ToJson(const std::vector<std::string>& v);
// The strings of a JSON array; anything else reads as none.
std::vector<std::string> FromJson(const std::string& s);
// The first column of every row of `q`, as text.
Result<std::vector<std::string>> Texts(Stmt& q);
// NotFound naming `what` when the last statement changed no row.
Status NotFoundIfUnchanged(Db& db, const std::string& what);

// Catalog::LoadEach, here for every file of the catalog that loads lists.
template <typename T>
Result<std::vector<T>> Catalog::LoadEach(Stmt& ids, Result<T> (Catalog::*get)(const std::string&)) {
  VMG_ASSIGN_OR_RETURN(auto all, Texts(ids));
  std::vector<T> out;
  for (const auto& id : all) {
    VMG_ASSIGN_OR_RETURN(T record, (this->*get)(id));
    out.push_back(std::move(record));
  }
  return out;
}

}  // namespace vmgroup::catalog
