#include "hostq/version.hpp"

namespace hostq {

// Compiled from the header's constant, so the library carries the version it was built as.
const char* version() noexcept { return kVersionString; }

}  // namespace hostq
