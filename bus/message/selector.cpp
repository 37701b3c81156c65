// JMS selector parser (recursive descent over a small lexer) and evaluator (three-valued logic).
// The rules implemented here are written down in docs/selectors.md; keep the two in step.
#include "message/selector.hpp"
#include "message/ascii.hpp"

#include "shmbus/error.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace shmbus::message {

namespace {

enum class Tok : std::uint8_t {
  End, Ident, String, Int, Float, LParen, RParen, Comma,
  Eq, Ne, Lt, Le, Gt, Ge, Plus, Minus, Star, Slash,
  Null, True, False, Not, And, Or, Between, Like, In, Is, Escape,
};

struct Token {
  Tok kind = Tok::End;
  std::size_t pos = 0, len = 0;  // byte range in the text
  std::string str;               // a String literal, '' unescaped
  std::uint64_t u = 0;           // an Int literal (meaningful when !overflow)
  bool overflow = false;         // an Int literal above 2^63
  double d = 0;                  // a Float literal
};

constexpr std::pair<std::string_view, Tok> kKeywords[] = {
    {"NULL", Tok::Null}, {"TRUE", Tok::True}, {"FALSE", Tok::False}, {"NOT", Tok::Not},
    {"AND", Tok::And}, {"OR", Tok::Or}, {"BETWEEN", Tok::Between}, {"LIKE", Tok::Like},
    {"IN", Tok::In}, {"IS", Tok::Is}, {"ESCAPE", Tok::Escape},
};

bool ident_start(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80;
}
bool ident_part(unsigned char c) noexcept { return ident_start(c) || (c >= '0' && c <= '9'); }
bool digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }
bool space(unsigned char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}


// Bytes of the UTF-8 sequence that starts at s[i] (1 for a stray or truncated byte), within s.
std::size_t next_char(std::string_view s, std::size_t i) noexcept {
  const auto lead = static_cast<unsigned char>(s[i]);
  const std::size_t len = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  return std::min(i + len, s.size());
}

// Static type of an expression, checked while parsing: Any is an identifier (known at run time).
enum class Kind : std::uint8_t { Num, Str, Bool, Any };

const char* describe(Kind k) noexcept {
  switch (k) {
    case Kind::Num: return "a numeric expression";
    case Kind::Str: return "a string";
    case Kind::Bool: return "a boolean expression";
    case Kind::Any: return "an identifier";
  }
  return "?";
}

// Compiled LIKE pattern in the pool: literal bytes as themselves, except 0x00 as "\0\0";
// '_' (one character) as "\0_" and '%' (any sequence) as "\0%".
constexpr char kOne = '_', kAny = '%';

Value normalize(const Value& v) noexcept {
  if (v.is_integral()) return Value::int64(v.i);
  if (v.type == ValueType::Float) return Value::float64(v.d);
  return v;
}

bool is_bool(const Value& v) noexcept { return v.type == ValueType::Bool; }
bool is_true(const Value& v) noexcept { return v.type == ValueType::Bool && v.i != 0; }
bool is_false(const Value& v) noexcept { return v.type == ValueType::Bool && v.i == 0; }

Value and3(const Value& a, const Value& b) noexcept {
  if (is_false(a) || is_false(b)) return Value::boolean(false);
  if (!is_bool(a) || !is_bool(b)) return Value::null();
  return Value::boolean(true);
}
Value or3(const Value& a, const Value& b) noexcept {
  if (is_true(a) || is_true(b)) return Value::boolean(true);
  if (!is_bool(a) || !is_bool(b)) return Value::null();
  return Value::boolean(false);
}

Value arith(std::uint8_t op, const Value& l, const Value& r) noexcept;

}  // namespace

// ------------------------------------------------------------------------------------------------
// Parser

class SelectorParser {
 public:
  using Op = Selector::Op;

  SelectorParser(Selector& sel, std::string_view text) : sel_(sel), text_(text) {}

  void run() {
    std::size_t i = 0;
    while (i < text_.size() && space(static_cast<unsigned char>(text_[i]))) ++i;
    if (i == text_.size()) return;  // blank: match everything
    next();
    const std::uint32_t root = parse_or();
    if (tok_.kind != Tok::End) fail(tok_.pos, "expected AND, OR or the end of the selector");
    need(root, Kind::Bool, "the selector");
    sel_.root_ = root;
  }

 private:
  [[noreturn]] void fail(std::size_t pos, const std::string& what, bool found = true) const {
    std::size_t chars = 1;
    for (std::size_t i = 0; i < pos && i < text_.size(); ++i)
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++chars;
    std::string msg = "selector syntax error at position " + std::to_string(chars) + ": " + what;
    if (found) msg += ", found " + found_text();
    throw Error(ErrorCode::InvalidArgument, msg);
  }

  std::string found_text() const {
    if (tok_.kind == Tok::End) return "the end of the selector";
    std::string_view t = text_.substr(tok_.pos, tok_.len);
    if (t.size() > 24) return "'" + std::string(t.substr(0, 24)) + "...'";
    return "'" + std::string(t) + "'";
  }

  [[noreturn]] void fail_depth(std::size_t pos) const {
    fail(pos, "the expression is nested too deep (more than " + std::to_string(Selector::kMaxDepth) +
                  " levels)", false);
  }

  // --- lexer ------------------------------------------------------------------------------------

  void next() {
    std::size_t i = pos_;
    while (i < text_.size() && space(static_cast<unsigned char>(text_[i]))) ++i;
    tok_ = Token{};
    tok_.pos = i;
    if (i >= text_.size()) {
      pos_ = i;
      return;
    }
    const auto c = static_cast<unsigned char>(text_[i]);
    std::size_t j = i + 1;
    if (ident_start(c)) {
      while (j < text_.size() && ident_part(static_cast<unsigned char>(text_[j]))) ++j;
      tok_.kind = Tok::Ident;
      for (const auto& [word, kind] : kKeywords)
        if (iequals_upper(text_.substr(i, j - i), word)) tok_.kind = kind;
    } else if (digit(c) || (c == '.' && i + 1 < text_.size() && digit(static_cast<unsigned char>(text_[i + 1])))) {
      j = lex_number(i);
    } else if (c == '\'') {
      j = lex_string(i);
    } else {
      j = lex_punct(i, c);
    }
    tok_.len = j - i;
    pos_ = j;
  }

  std::size_t lex_number(std::size_t i) {
    const auto at = [&](std::size_t k) -> unsigned char { return k < text_.size() ? static_cast<unsigned char>(text_[k]) : 0; };
    std::size_t j = i;
    bool fractional = false;
    while (digit(at(j))) ++j;
    if (at(j) == '.') {
      fractional = true;
      ++j;
      while (digit(at(j))) ++j;
    }
    if (at(j) == 'e' || at(j) == 'E') {
      fractional = true;
      ++j;
      if (at(j) == '+' || at(j) == '-') ++j;
      if (!digit(at(j))) {
        tok_.pos = j;
        tok_.len = j < text_.size() ? 1 : 0;
        tok_.kind = j < text_.size() ? Tok::Ident : Tok::End;
        fail(j, "expected the digits of the exponent");
      }
      while (digit(at(j))) ++j;
    }
    if (ident_part(at(j)) || at(j) == '.') {
      tok_.pos = j;
      tok_.len = 1;
      tok_.kind = Tok::Ident;
      fail(j, "expected an operator or a space after the number " + std::string(text_.substr(i, j - i)));
    }
    if (fractional) {
      tok_.kind = Tok::Float;
      const auto [p, ec] = std::from_chars(text_.data() + i, text_.data() + j, tok_.d);
      if (ec != std::errc() || p != text_.data() + j || !std::isfinite(tok_.d))
        fail(i, "number " + std::string(text_.substr(i, j - i)) + " is out of the range of a double", false);
    } else {
      tok_.kind = Tok::Int;
      for (std::size_t k = i; k < j; ++k) {
        const auto d = static_cast<std::uint64_t>(text_[k] - '0');
        if (tok_.u > (std::uint64_t{1} << 63) / 10 || tok_.u * 10 + d > (std::uint64_t{1} << 63)) {
          tok_.overflow = true;
        } else {
          tok_.u = tok_.u * 10 + d;
        }
      }
    }
    return j;
  }

  std::size_t lex_string(std::size_t i) {
    tok_.kind = Tok::String;
    std::size_t j = i + 1;
    for (;;) {
      const std::size_t q = text_.find('\'', j);
      if (q == std::string_view::npos) {
        tok_.kind = Tok::End;
        tok_.pos = text_.size();
        fail(i, "unterminated string literal (expected a closing ')", false);
      }
      tok_.str.append(text_.substr(j, q - j));
      if (q + 1 < text_.size() && text_[q + 1] == '\'') {
        tok_.str.push_back('\'');
        j = q + 2;
      } else {
        return q + 1;
      }
    }
  }

  std::size_t lex_punct(std::size_t i, unsigned char c) {
    const unsigned char n = i + 1 < text_.size() ? static_cast<unsigned char>(text_[i + 1]) : 0;
    switch (c) {
      case '(': tok_.kind = Tok::LParen; return i + 1;
      case ')': tok_.kind = Tok::RParen; return i + 1;
      case ',': tok_.kind = Tok::Comma; return i + 1;
      case '=': tok_.kind = Tok::Eq; return i + 1;
      case '+': tok_.kind = Tok::Plus; return i + 1;
      case '-': tok_.kind = Tok::Minus; return i + 1;
      case '*': tok_.kind = Tok::Star; return i + 1;
      case '/': tok_.kind = Tok::Slash; return i + 1;
      case '<':
        if (n == '>') { tok_.kind = Tok::Ne; return i + 2; }
        if (n == '=') { tok_.kind = Tok::Le; return i + 2; }
        tok_.kind = Tok::Lt;
        return i + 1;
      case '>':
        if (n == '=') { tok_.kind = Tok::Ge; return i + 2; }
        tok_.kind = Tok::Gt;
        return i + 1;
      default: break;
    }
    tok_.kind = Tok::Ident;  // only for found_text()
    tok_.len = next_char(text_, i) - i;
    if (c == '!' && n == '=') {
      tok_.len = 2;
      fail(i, "expected an operator (write 'not equal' as <>)");
    }
    fail(i, "expected an operator, an identifier, a literal or a parenthesis");
  }

  bool accept(Tok k) {
    if (tok_.kind != k) return false;
    next();
    return true;
  }
  void expect(Tok k, const char* what) {
    if (!accept(k)) fail(tok_.pos, std::string("expected ") + what);
  }

  // --- nodes ------------------------------------------------------------------------------------

  std::uint32_t add(Selector::Node n, Kind kind, std::size_t pos, int depth) {
    if (depth > Selector::kMaxDepth) fail_depth(pos);
    sel_.nodes_.push_back(n);
    kind_.push_back(kind);
    pos_of_.push_back(pos);
    depth_.push_back(depth);
    return static_cast<std::uint32_t>(sel_.nodes_.size() - 1);
  }
  std::uint32_t add(Op op, Kind kind, std::uint32_t a, std::uint32_t b = 0, std::uint32_t c = 0) {
    int d = depth_[a];
    if (op >= Op::Add && op <= Op::NotBetween) d = std::max(d, depth_[b]);  // b is a node
    if (op == Op::Between || op == Op::NotBetween) d = std::max(d, depth_[c]);
    return add(Selector::Node{op, a, b, c, {}}, kind, pos_of_[a], d + 1);
  }
  std::uint32_t add_literal(Value v, Kind kind, std::size_t pos) {
    return add(Selector::Node{Op::Literal, 0, 0, 0, v}, kind, pos, 1);
  }
  std::uint32_t intern(std::string_view s) {
    if (sel_.pool_.size() + s.size() > std::numeric_limits<std::uint32_t>::max()) fail(0, "too long", false);
    const auto off = static_cast<std::uint32_t>(sel_.pool_.size());
    sel_.pool_.append(s);
    return off;
  }

  // Checks that node n may stand where `want` (Num or Bool) is needed.
  void need(std::uint32_t n, Kind want, const std::string& where) const {
    const Kind k = kind_[n];
    if (k == want || k == Kind::Any) return;
    fail(pos_of_[n], std::string("expected ") + describe(want) + " as " + where + ", found " + describe(k), false);
  }

  void enter(std::size_t pos) {
    if (++nesting_ > Selector::kMaxDepth) fail_depth(pos);
  }
  void leave() { --nesting_; }

  // --- grammar ----------------------------------------------------------------------------------

  std::uint32_t parse_nary(Tok sep, Op op, const char* name) {
    std::uint32_t first = sep == Tok::Or ? parse_nary(Tok::And, Op::And, "AND") : parse_not();
    if (tok_.kind != sep) return first;
    std::vector<std::uint32_t> ops{first};
    need(first, Kind::Bool, std::string("an operand of ") + name);
    int depth = depth_[first];
    while (accept(sep)) {
      const std::uint32_t x = sep == Tok::Or ? parse_nary(Tok::And, Op::And, "AND") : parse_not();
      need(x, Kind::Bool, std::string("an operand of ") + name);
      depth = std::max(depth, depth_[x]);
      ops.push_back(x);
    }
    const auto at = static_cast<std::uint32_t>(sel_.aux_.size());
    sel_.aux_.insert(sel_.aux_.end(), ops.begin(), ops.end());
    return add(Selector::Node{op, at, static_cast<std::uint32_t>(ops.size()), 0, {}}, Kind::Bool,
               pos_of_[first], depth + 1);
  }
  std::uint32_t parse_or() { return parse_nary(Tok::Or, Op::Or, "OR"); }

  std::uint32_t parse_not() {
    if (tok_.kind != Tok::Not) return parse_predicate();
    const std::size_t pos = tok_.pos;
    next();
    enter(pos);
    const std::uint32_t x = parse_not();
    leave();
    need(x, Kind::Bool, "the operand of NOT");
    const std::uint32_t n = add(Op::Not, Kind::Bool, x);
    pos_of_[n] = pos;
    return n;
  }

  std::uint32_t parse_predicate() {
    const std::uint32_t l = parse_additive();
    const std::size_t op_pos = tok_.pos;
    switch (tok_.kind) {
      case Tok::Eq: case Tok::Ne: {
        const Op op = tok_.kind == Tok::Eq ? Op::Eq : Op::Ne;
        next();
        const std::uint32_t r = parse_additive();
        if (kind_[l] != Kind::Any && kind_[r] != Kind::Any && kind_[l] != kind_[r])
          fail(op_pos, std::string("cannot compare ") + describe(kind_[l]) + " with " + describe(kind_[r]), false);
        return add(op, Kind::Bool, l, r);
      }
      case Tok::Lt: case Tok::Le: case Tok::Gt: case Tok::Ge: {
        const Op op = tok_.kind == Tok::Lt ? Op::Lt : tok_.kind == Tok::Le ? Op::Le
                    : tok_.kind == Tok::Gt ? Op::Gt : Op::Ge;
        const std::string where = "an operand of '" + std::string(text_.substr(op_pos, tok_.len)) +
                                  "' (strings and booleans compare only with = and <>)";
        next();
        const std::uint32_t r = parse_additive();
        need(l, Kind::Num, where);
        need(r, Kind::Num, where);
        return add(op, Kind::Bool, l, r);
      }
      case Tok::Not:
        next();
        if (tok_.kind != Tok::Between && tok_.kind != Tok::In && tok_.kind != Tok::Like)
          fail(tok_.pos, "expected BETWEEN, IN or LIKE after NOT");
        return parse_special(l, true);
      case Tok::Between: case Tok::In: case Tok::Like: return parse_special(l, false);
      case Tok::Is: {
        next();
        const bool negate = accept(Tok::Not);
        expect(Tok::Null, negate ? "NULL after IS NOT" : "NOT or NULL after IS");
        need_ident(l, "IS NULL");
        return add(negate ? Op::IsNotNull : Op::IsNull, Kind::Bool, l);
      }
      default: return l;
    }
  }

  void need_ident(std::uint32_t l, const char* what) const {
    if (sel_.nodes_[l].op != Op::Ident)
      fail(pos_of_[l], std::string("expected an identifier before ") + what + ", found " + describe(kind_[l]), false);
  }

  // BETWEEN, IN, LIKE after x [NOT].
  std::uint32_t parse_special(std::uint32_t l, bool negate) {
    const Tok what = tok_.kind;
    next();
    if (what == Tok::Between) {
      need(l, Kind::Num, "the operand of BETWEEN");
      const std::uint32_t lo = parse_additive();
      need(lo, Kind::Num, "the lower bound of BETWEEN");
      expect(Tok::And, "AND in BETWEEN x AND y");
      const std::uint32_t hi = parse_additive();
      need(hi, Kind::Num, "the upper bound of BETWEEN");
      return add(negate ? Op::NotBetween : Op::Between, Kind::Bool, l, lo, hi);
    }
    if (what == Tok::In) {
      need_ident(l, "IN");
      expect(Tok::LParen, "'(' after IN");
      std::vector<std::uint32_t> items;
      do {
        if (tok_.kind != Tok::String) fail(tok_.pos, "expected a string literal in the IN list");
        items.push_back(intern(tok_.str));
        items.push_back(static_cast<std::uint32_t>(tok_.str.size()));
        next();
      } while (accept(Tok::Comma));
      expect(Tok::RParen, "',' or ')' in the IN list");
      const auto at = static_cast<std::uint32_t>(sel_.aux_.size());
      sel_.aux_.insert(sel_.aux_.end(), items.begin(), items.end());
      return add(negate ? Op::NotIn : Op::In, Kind::Bool, l, at, static_cast<std::uint32_t>(items.size() / 2));
    }
    need_ident(l, "LIKE");
    if (tok_.kind != Tok::String) fail(tok_.pos, "expected a string literal pattern after LIKE");
    const std::string pattern = tok_.str;
    const std::size_t pattern_pos = tok_.pos;
    next();
    std::string escape;
    if (accept(Tok::Escape)) {
      if (tok_.kind != Tok::String) fail(tok_.pos, "expected a one-character string literal after ESCAPE");
      escape = tok_.str;
      if (escape.empty() || next_char(escape, 0) != escape.size())
        fail(tok_.pos, "expected exactly one character in the ESCAPE string", true);
      next();
    }
    const auto [off, len] = compile_like(pattern, escape, pattern_pos);
    return add(negate ? Op::NotLike : Op::Like, Kind::Bool, l, off, len);
  }

  std::pair<std::uint32_t, std::uint32_t> compile_like(std::string_view p, std::string_view esc, std::size_t pos) {
    std::string out;
    // Whether the last element written is the '%' wildcard (a run of them is one). Tracked, not
    // read back from `out`: a literal NUL ("\0\0") then a literal '%' ends in the same two bytes
    // as the wildcard ("\0" kAny) — the fuzzer's LIKE oracle found that.
    bool last_any = false;
    for (std::size_t i = 0; i < p.size();) {
      if (!esc.empty() && p.substr(i, esc.size()) == esc) {
        i += esc.size();
        if (i >= p.size()) fail(pos, "the LIKE pattern ends with its escape character", false);
        const std::size_t e = next_char(p, i);
        for (; i < e; ++i) {
          if (p[i] == '\0') out.push_back('\0');
          out.push_back(p[i]);
        }
        last_any = false;
      } else if (p[i] == '_' || p[i] == '%') {
        if (!(p[i] == '%' && last_any)) {
          out.push_back('\0');
          out.push_back(p[i] == '_' ? kOne : kAny);
        }
        last_any = p[i] == '%';
        ++i;
      } else {
        if (p[i] == '\0') out.push_back('\0');
        out.push_back(p[i++]);
        last_any = false;
      }
    }
    return {intern(out), static_cast<std::uint32_t>(out.size())};
  }

  std::uint32_t parse_additive() {
    std::uint32_t l = parse_multiplicative();
    while (tok_.kind == Tok::Plus || tok_.kind == Tok::Minus) {
      const Op op = tok_.kind == Tok::Plus ? Op::Add : Op::Sub;
      const char* name = tok_.kind == Tok::Plus ? "an operand of '+'" : "an operand of '-'";
      next();
      const std::uint32_t r = parse_multiplicative();
      need(l, Kind::Num, name);
      need(r, Kind::Num, name);
      l = add(op, Kind::Num, l, r);
    }
    return l;
  }

  std::uint32_t parse_multiplicative() {
    std::uint32_t l = parse_unary();
    while (tok_.kind == Tok::Star || tok_.kind == Tok::Slash) {
      const Op op = tok_.kind == Tok::Star ? Op::Mul : Op::Div;
      const char* name = tok_.kind == Tok::Star ? "an operand of '*'" : "an operand of '/'";
      next();
      const std::uint32_t r = parse_unary();
      need(l, Kind::Num, name);
      need(r, Kind::Num, name);
      l = add(op, Kind::Num, l, r);
    }
    return l;
  }

  std::uint32_t parse_unary() {
    if (tok_.kind != Tok::Plus && tok_.kind != Tok::Minus) return parse_primary(false);
    const bool minus = tok_.kind == Tok::Minus;
    const std::size_t pos = tok_.pos;
    next();
    if (tok_.kind == Tok::Int || tok_.kind == Tok::Float) {  // a signed literal: fold (-2^63 fits)
      const std::uint32_t n = parse_primary(minus);
      pos_of_[n] = pos;
      return n;
    }
    enter(pos);
    const std::uint32_t x = parse_unary();
    leave();
    need(x, Kind::Num, minus ? "the operand of unary '-'" : "the operand of unary '+'");
    if (!minus) return x;
    const std::uint32_t n = add(Op::Neg, Kind::Num, x);
    pos_of_[n] = pos;
    return n;
  }

  std::uint32_t parse_primary(bool negative) {
    const std::size_t pos = tok_.pos;
    switch (tok_.kind) {
      case Tok::Int: {
        const std::uint64_t limit = std::uint64_t{1} << 63;
        if (tok_.overflow || tok_.u > limit || (tok_.u == limit && !negative))
          fail(pos, "integer " + std::string(text_.substr(pos, tok_.len)) + " is out of the range of a long", false);
        const std::int64_t v = tok_.u == limit ? std::numeric_limits<std::int64_t>::min()
                               : negative ? -static_cast<std::int64_t>(tok_.u)
                                          : static_cast<std::int64_t>(tok_.u);
        next();
        return add_literal(Value::int64(v), Kind::Num, pos);
      }
      case Tok::Float: {
        const double v = negative ? -tok_.d : tok_.d;
        next();
        return add_literal(Value::float64(v), Kind::Num, pos);
      }
      case Tok::String: {
        const auto off = intern(tok_.str);
        const auto len = static_cast<std::uint32_t>(tok_.str.size());
        next();
        return add(Selector::Node{Op::Literal, off, len, 0, Value::string({})}, Kind::Str, pos, 1);
      }
      case Tok::True: case Tok::False: {
        const bool v = tok_.kind == Tok::True;
        next();
        return add_literal(Value::boolean(v), Kind::Bool, pos);
      }
      case Tok::Ident: {
        const auto off = intern(text_.substr(pos, tok_.len));
        const auto len = static_cast<std::uint32_t>(tok_.len);
        next();
        return add(Selector::Node{Op::Ident, off, len, 0, {}}, Kind::Any, pos, 1);
      }
      case Tok::LParen: {
        next();
        enter(pos);
        const std::uint32_t x = parse_or();
        leave();
        expect(Tok::RParen, "')'");
        pos_of_[x] = pos;
        return x;
      }
      case Tok::Null: fail(pos, "NULL is allowed only in IS [NOT] NULL", false);
      default: fail(pos, "expected an identifier, a literal or '('");
    }
  }

  Selector& sel_;
  std::string_view text_;
  std::size_t pos_ = 0;  // lexer position: just after tok_
  Token tok_;
  int nesting_ = 0;
  std::vector<Kind> kind_;
  std::vector<std::size_t> pos_of_;  // first character of each node's expression
  std::vector<int> depth_;
};

Selector Selector::parse(std::string_view text) {
  if (text.size() > kMaxLength)
    throw Error(ErrorCode::InvalidArgument, "selector too long: " + std::to_string(text.size()) +
                                                " bytes (the limit is " + std::to_string(kMaxLength) + ")");
  Selector sel;
  sel.text_ = std::string(text);
  SelectorParser(sel, sel.text_).run();
  sel.nodes_.shrink_to_fit();
  sel.aux_.shrink_to_fit();
  return sel;
}

// ------------------------------------------------------------------------------------------------
// Evaluation: every value is Null (UNKNOWN), Bool, Int64, Double, String, or another type (byte[],
// char) that compares unequal to everything and is UNKNOWN in arithmetic.

namespace {

Value arith(std::uint8_t op, const Value& l, const Value& r) noexcept {
  enum : std::uint8_t { Add, Sub, Mul, Div };
  if (!l.is_numeric() || !r.is_numeric()) return Value::null();
  if (l.type == ValueType::Int64 && r.type == ValueType::Int64) {  // Java long: wraps
    const auto a = static_cast<std::uint64_t>(l.i), b = static_cast<std::uint64_t>(r.i);
    switch (op) {
      case Add: return Value::int64(static_cast<std::int64_t>(a + b));
      case Sub: return Value::int64(static_cast<std::int64_t>(a - b));
      case Mul: return Value::int64(static_cast<std::int64_t>(a * b));
      default:
        if (r.i == 0) return Value::null();
        if (r.i == -1) return Value::int64(static_cast<std::int64_t>(0 - a));
        return Value::int64(l.i / r.i);
    }
  }
  const double a = l.type == ValueType::Int64 ? static_cast<double>(l.i) : l.d;
  const double b = r.type == ValueType::Int64 ? static_cast<double>(r.i) : r.d;
  switch (op) {
    case Add: return Value::float64(a + b);
    case Sub: return Value::float64(a - b);
    case Mul: return Value::float64(a * b);
    default: return b == 0 ? Value::null() : Value::float64(a / b);
  }
}

}  // namespace

Value Selector::compare(Op op, const Value& l, const Value& r) const noexcept {
  if (l.is_null() || r.is_null()) return Value::null();
  int c = 0;  // -1, 0, 1; 2 = unordered (NaN)
  if (l.is_numeric() && r.is_numeric()) {
    if (l.type == ValueType::Int64 && r.type == ValueType::Int64) {
      c = l.i < r.i ? -1 : l.i > r.i ? 1 : 0;
    } else {
      const double a = l.type == ValueType::Int64 ? static_cast<double>(l.i) : l.d;
      const double b = r.type == ValueType::Int64 ? static_cast<double>(r.i) : r.d;
      c = a < b ? -1 : a > b ? 1 : a == b ? 0 : 2;
    }
  } else if ((l.type == ValueType::String && r.type == ValueType::String) ||
             (l.type == ValueType::Bool && r.type == ValueType::Bool)) {
    const bool eq = l.type == ValueType::String ? l.s == r.s : l.i == r.i;
    if (op == Op::Eq) return Value::boolean(eq);
    if (op == Op::Ne) return Value::boolean(!eq);
    return Value::boolean(false);  // strings and booleans have no order
  } else {
    return Value::boolean(false);  // unlike types: false (JMS)
  }
  switch (op) {
    case Op::Eq: return Value::boolean(c == 0);
    case Op::Ne: return Value::boolean(c != 0);
    case Op::Lt: return Value::boolean(c == -1);
    case Op::Le: return Value::boolean(c == -1 || c == 0);
    case Op::Gt: return Value::boolean(c == 1);
    default: return Value::boolean(c == 1 || c == 0);
  }
}

bool Selector::like(std::string_view s, std::uint32_t off, std::uint32_t len) const noexcept {
  const std::string_view p = pool(off, len);
  std::size_t i = 0, k = 0;                           // subject, pattern positions
  std::size_t star_k = std::string_view::npos, star_i = 0;
  while (i < s.size()) {
    if (k < p.size()) {
      const bool special = p[k] == '\0';
      const char elem = special ? p[k + 1] : p[k];
      const std::size_t after = k + (special ? 2 : 1);
      if (special && elem == kAny) {
        k = after;
        star_k = k;
        star_i = i;
        continue;
      }
      if (special && elem == kOne) {
        i = next_char(s, i);
        k = after;
        continue;
      }
      if (s[i] == elem) {
        ++i;
        k = after;
        continue;
      }
    }
    if (star_k == std::string_view::npos) return false;
    star_i = next_char(s, star_i);
    i = star_i;
    k = star_k;
  }
  while (k + 1 < p.size() && p[k] == '\0' && p[k + 1] == kAny) k += 2;
  return k == p.size();
}

Value Selector::eval(std::uint32_t n, const PropertySource& props) const noexcept {
  const Node& x = nodes_[n];
  switch (x.op) {
    case Op::Literal: return x.lit.type == ValueType::String ? Value::string(pool(x.a, x.b)) : x.lit;
    case Op::Ident: return normalize(props.get(pool(x.a, x.b)));
    case Op::Neg: {
      const Value v = eval(x.a, props);
      if (v.type == ValueType::Int64) return Value::int64(static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(v.i)));
      if (v.type == ValueType::Double) return Value::float64(-v.d);
      return Value::null();
    }
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div:
      return arith(static_cast<std::uint8_t>(static_cast<int>(x.op) - static_cast<int>(Op::Add)),
                   eval(x.a, props), eval(x.b, props));
    case Op::Eq: case Op::Ne: case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge:
      return compare(x.op, eval(x.a, props), eval(x.b, props));
    case Op::Between: case Op::NotBetween: {
      const Value v = eval(x.a, props), lo = eval(x.b, props), hi = eval(x.c, props);
      if (x.op == Op::Between) return and3(compare(Op::Le, lo, v), compare(Op::Le, v, hi));
      return or3(compare(Op::Lt, v, lo), compare(Op::Gt, v, hi));
    }
    case Op::Not: {
      const Value v = eval(x.a, props);
      return is_bool(v) ? Value::boolean(v.i == 0) : Value::null();
    }
    case Op::And: case Op::Or: {
      const bool decisive = x.op == Op::Or;  // the operand value that settles the result
      bool unknown = false;
      for (std::uint32_t k = 0; k < x.b; ++k) {
        const Value v = eval(aux_[x.a + k], props);
        if (!is_bool(v)) unknown = true;
        else if ((v.i != 0) == decisive) return Value::boolean(decisive);
      }
      return unknown ? Value::null() : Value::boolean(!decisive);
    }
    case Op::In: case Op::NotIn: {
      const Value v = eval(x.a, props);
      if (v.type != ValueType::String) return Value::null();
      bool found = false;
      for (std::uint32_t k = 0; k < x.c && !found; ++k) found = v.s == pool(aux_[x.b + 2 * k], aux_[x.b + 2 * k + 1]);
      return Value::boolean(found == (x.op == Op::In));
    }
    case Op::Like: case Op::NotLike: {
      const Value v = eval(x.a, props);
      if (v.type != ValueType::String) return Value::null();
      return Value::boolean(like(v.s, x.b, x.c) == (x.op == Op::Like));
    }
    case Op::IsNull: return Value::boolean(eval(x.a, props).is_null());
    case Op::IsNotNull: return Value::boolean(!eval(x.a, props).is_null());
  }
  return Value::null();
}

bool Selector::matches(const PropertySource& props) const noexcept {
  if (nodes_.empty()) return true;
  return is_true(eval(root_, props));
}

}  // namespace shmbus::message
