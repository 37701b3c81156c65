// JMS message selectors (issue 5, item 4): the JMS 2.0 / SQL-92 conditional-expression subset,
// parsed once (when a consumer is created) into a flat tree of nodes and evaluated against a
// PropertySource with no allocation. Grammar, type rules, three-valued logic and limits:
// docs/selectors.md.
#pragma once
#include "shmbus/message/value.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::message {

class Selector {
 public:
  /// Longest selector text accepted, in bytes.
  static constexpr std::size_t kMaxLength = 64 * 1024;
  /// Deepest expression accepted: parentheses, NOT and unary signs, and operator levels.
  static constexpr int kMaxDepth = 200;

  /// An empty selector: matches every message.
  Selector() = default;

  /// Parses `text` (empty or blank = match everything). Throws shmbus::Error(InvalidArgument):
  /// "selector syntax error at position N: expected X, found Y" (N is the 1-based character
  /// position), or when the text is longer than kMaxLength or nested deeper than kMaxDepth.
  static Selector parse(std::string_view text);

  /// True only when the expression evaluates to TRUE: FALSE and UNKNOWN (NULL) do not match.
  bool matches(const PropertySource& props) const noexcept;

  /// The text it was parsed from.
  std::string_view text() const noexcept { return text_; }

  /// True when it matches every message (an empty selector).
  bool matches_all() const noexcept { return nodes_.empty(); }

 private:
  friend class SelectorParser;

  enum class Op : std::uint8_t {
    Literal,     // lit (a String literal's bytes are pool_[a, a+b))
    Ident,       // name = pool_[a, a+b)
    Neg,         // -a
    Add, Sub, Mul, Div,           // a op b
    Eq, Ne, Lt, Le, Gt, Ge,       // a op b
    Between, NotBetween,          // a [NOT] BETWEEN b AND c
    Not,                          // NOT a
    And, Or,                      // aux_[a, a+b) are the operands
    In, NotIn,                    // a [NOT] IN: aux_[b, b+2c) are (offset, length) pairs in pool_
    Like, NotLike,                // a [NOT] LIKE: compiled pattern pool_[b, b+c)
    IsNull, IsNotNull,            // a IS [NOT] NULL
  };
  struct Node {
    Op op = Op::Literal;
    std::uint32_t a = 0, b = 0, c = 0;
    Value lit;
  };

  Value eval(std::uint32_t n, const PropertySource& props) const noexcept;
  Value compare(Op op, const Value& l, const Value& r) const noexcept;
  bool like(std::string_view subject, std::uint32_t off, std::uint32_t len) const noexcept;
  std::string_view pool(std::uint32_t off, std::uint32_t len) const noexcept {
    return {pool_.data() + off, len};
  }

  std::string text_;
  std::vector<Node> nodes_;          // children before parents; empty = match everything
  std::vector<std::uint32_t> aux_;   // AND/OR operand lists, IN item lists
  std::string pool_;                 // names, string literals, compiled LIKE patterns
  std::uint32_t root_ = 0;
};

}  // namespace shmbus::message
