// Small ASCII helpers shared by the frame and selector code.
#pragma once
#include <string_view>

namespace shmbus::message {

/// True when `a` equals `upper` (an upper-case ASCII word) ignoring the case of `a`'s ASCII
/// letters: keyword matching (selector keywords, reserved property names, "TRUE").
inline bool iequals_upper(std::string_view a, std::string_view upper) noexcept {
  if (a.size() != upper.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != upper[i]) return false;
  }
  return true;
}

}  // namespace shmbus::message
