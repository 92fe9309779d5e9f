// Status: the outcome of an operation, as a value. Every layer returns these
// instead of throwing; services/ later maps a Code to the Hyper-V return code
// of the method at hand (see return_codes.h).
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace vmgroup {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller passed something malformed or unknown
  kNotFound,         // a named object (VM, collection, snapshot, job) does not exist
  kFileNotFound,     // a file the request depends on is missing
  kAlreadyExists,    // a unique id or membership is already taken
  kInvalidState,     // the object exists but its state forbids the operation
  kInvalidType,      // a value of a type (e.g. a vendor SnapshotType) this build does not know
  kBusy,             // another operation holds the object
  kNotSupported,
  kTimeout,      // a deadline passed; the operation was rolled back
  kUnavailable,  // a peer (QEMU, a process) is gone or not answering
  kFailed,       // a peer refused the operation (e.g. a QMP error reply)
  kIoError,      // a file or socket operation failed
  kTooLarge,     // a message or value past a size limit
  kCancelled,    // stopped on request; nothing of it remains
  kInternal,     // a broken invariant; a bug
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  // OK.
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status FileNotFound(std::string m) { return {Code::kFileNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status InvalidState(std::string m) { return {Code::kInvalidState, std::move(m)}; }
  static Status InvalidType(std::string m) { return {Code::kInvalidType, std::move(m)}; }
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status NotSupported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Failed(std::string m) { return {Code::kFailed, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status TooLarge(std::string m) { return {Code::kTooLarge, std::move(m)}; }
  static Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // The same status with "context: " put before the message, so an error that
  // crosses layers says where it happened ("member db1: disk 0: ...").
  Status Annotate(std::string_view context) const;

  // "InvalidState: collection web has no members"; "OK" when ok().
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace vmgroup

// Returns the status of `expr` from the enclosing function unless it is OK.
#define VMG_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::vmgroup::Status vmg_status_ = (expr);    \
    if (!vmg_status_.ok()) return vmg_status_; \
  } while (0)
