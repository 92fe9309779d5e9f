#include "daemon/pam_auth.h"

#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>

namespace vmgroup::daemon {
namespace {

// Answers PAM's password prompts with the password it was given.
int Converse(int n, const pam_message** msgs, pam_response** out, void* data) {
  auto* replies =
      static_cast<pam_response*>(std::calloc(static_cast<size_t>(n), sizeof(pam_response)));
  if (!replies) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i) {
    if (msgs[i]->msg_style == PAM_PROMPT_ECHO_OFF || msgs[i]->msg_style == PAM_PROMPT_ECHO_ON) {
      replies[i].resp = ::strdup(static_cast<const char*>(data));
    }
  }
  *out = replies;
  return PAM_SUCCESS;
}

}  // namespace

bool PamAuthenticate(const std::string& service, const std::string& user,
                     const std::string& password) {
  pam_conv conv{Converse, const_cast<char*>(password.c_str())};
  pam_handle_t* h = nullptr;
  if (pam_start(service.c_str(), user.c_str(), &conv, &h) != PAM_SUCCESS) return false;
  int rc = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
  if (rc == PAM_SUCCESS) rc = pam_acct_mgmt(h, PAM_SILENT);
  pam_end(h, rc);
  return rc == PAM_SUCCESS;
}

}  // namespace vmgroup::daemon
