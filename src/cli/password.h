// Where vmgroup takes the password for an http(s)://USER@HOST daemon from:
// --password-file, else $VMGROUP_PASSWORD, else a prompt on the terminal.
// Never from the command line, where every local user reads it (ps,
// /proc/PID/cmdline).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/result.h"

namespace vmgroup::cli {

struct PasswordSources {
  std::string file;                // --password-file: its first line
  std::optional<std::string> env;  // $VMGROUP_PASSWORD, when set
  // Asks for the password with `prompt` (PromptOnTerminal); Unavailable,
  // or null, when there is no terminal.
  std::function<Result<std::string>(const std::string& prompt)> prompt;
};

// The user an http:// or https:// `endpoint` names before '@'; "" when it
// names none (and for unix:).
std::string EndpointUser(const std::string& endpoint);

// The password to send with `endpoint`: "" when it names no user, or when
// it carries its own (allowed only in $VMGROUP_CONNECT). InvalidArgument
// (exit 2) for a password in an endpoint from the command line
// (`from_command_line`), an unreadable or empty --password-file, or a user
// with no password anywhere and no terminal to ask on.
Result<std::string> PasswordFor(const std::string& endpoint, bool from_command_line,
                                const PasswordSources& sources);

// Asks on /dev/tty with echo off; the line typed, without its newline.
// Unavailable when there is no terminal.
Result<std::string> PromptOnTerminal(const std::string& prompt);

}  // namespace vmgroup::cli
