// A thin RAII layer over SQLite's C API: a connection, prepared statements
// and a transaction guard that rolls back unless committed. Errors become
// Status values carrying SQLite's message.
//
// Not thread-safe: Catalog serialises access to one Db.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmgroup::catalog {

class Stmt;

class Db {
 public:
  // Opens (creating if needed) the database at `path` in WAL mode, with
  // foreign keys on and fully synchronous commits.
  static Result<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements that return no rows.
  Status Exec(std::string_view sql);
  Result<Stmt> Prepare(std::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  Status Error(std::string_view what) const;

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

class Stmt {
 public:
  Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Stmt(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }

  // Binds parameters ?1, ?2, ... in order. Returns *this for chaining.
  Stmt& Bind(int index, std::string_view v);
  Stmt& Bind(int index, int64_t v);
  Stmt& Bind(int index, int v) { return Bind(index, static_cast<int64_t>(v)); }
  Stmt& BindNull(int index);

  // Advances to the next row: true with a row, false when done.
  Result<bool> Step();
  // Steps once, for statements that return no rows.
  Status Run();

  std::string Text(int col) const;
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  friend class Db;
  Stmt(const Db* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  const Db* db_;
  sqlite3_stmt* stmt_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless Commit()
// succeeded. Every state change that matters is one of these.
class Transaction {
 public:
  explicit Transaction(Db* db);
  ~Transaction();
  // The status of BEGIN; nothing else in the transaction runs if it failed.
  const Status& status() const { return begin_; }
  Status Commit();

 private:
  Db* db_;
  Status begin_;
  bool done_ = false;
};

}  // namespace vmgroup::catalog
