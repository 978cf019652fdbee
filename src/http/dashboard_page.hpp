#pragma once
// The dashboard at GET /: one self-contained HTML page (CSS and JS inline, no external assets,
// works offline) that polls /api/dashboard every second.
#include <string_view>

namespace hostq::http {

std::string_view dashboardPage() noexcept;

}  // namespace hostq::http
