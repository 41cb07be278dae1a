// Error capture: every entry point records failures here instead of letting exceptions escape.
#include "common.h"

namespace {
thread_local std::string last_error;
}

namespace ld {
void set_error(const char* op, const char* message) {
  last_error = std::string(op) + ": " + (message ? message : "");
}
}  // namespace ld

extern "C" {
LD_API int ld_abi_version(void) { return LD_ABI_VERSION; }
LD_API const char* ld_last_error(void) { return last_error.c_str(); }
}
