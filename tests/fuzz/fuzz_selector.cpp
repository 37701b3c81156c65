// libFuzzer target: the selector parser and evaluator (bus/message/selector.hpp, .cpp).
//
// Input: selector text, then optionally a frame. The split is the first "SHMF" (a frame's magic):
// the bytes before it are the text, the frame is "SHMF" and everything after it. So a seed is
// readable ("JMSPriority > 4 SHMF...") and a text never contains "SHMF".
//
// Checks:
//  - parse() returns or throws shmbus::Error(InvalidArgument) with a "selector ..." message;
//    anything else escaping (another exception type, a crash, an ASan/UBSan report) is a bug;
//  - a parsed selector keeps its text, copies evaluate alike, evaluation is deterministic;
//  - X and NOT (X) never both match (three-valued logic), evaluated against a fixed property set
//    with every type (NULL, booleans, every integer width, NaN and infinities, strings with LIKE
//    metacharacters and a NUL, bytes, a char), an empty one, and the frame when it opens;
//  - LIKE against a reference matcher: the text, when it is short ASCII, is also read as
//    "PATTERN|SUBJECT" and `s LIKE 'PATTERN' ESCAPE '!'` must agree with a plain backtracking
//    matcher on SUBJECT (and be a syntax error exactly when PATTERN ends with a lone '!').
#include "fuzz_common.hpp"
#include "message/selector.hpp"
#include "shmbus/error.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

namespace {

using namespace shmbus::message;
using shmbus::fuzz::Exact;

/// Properties of every type; names used by docs/selectors.md, the unit tests and the seed corpus.
class FixedSource final : public PropertySource {
 public:
  Value get(std::string_view n) const noexcept override {
    using namespace std::string_view_literals;
    static const struct { std::string_view name; Value v; } kProps[] = {
        {"nul", Value::null()},
        {"t", Value::boolean(true)},
        {"f_", Value::boolean(false)},
        {"i8", Value::int8(-3)},
        {"i16", Value::int16(300)},
        {"i32", Value::int32(5)},
        {"i64", Value::int64(10'000'000'000LL)},
        {"lmin", Value::int64(std::numeric_limits<std::int64_t>::min())},
        {"lmax", Value::int64(std::numeric_limits<std::int64_t>::max())},
        {"zero", Value::int32(0)},
        {"a", Value::int32(1)},
        {"b", Value::int64(-2)},
        {"c", Value::int16(3)},
        {"f", Value::float32(2.5f)},
        {"d", Value::float64(2.5)},
        {"dzero", Value::float64(-0.0)},
        {"nan", Value::float64(std::numeric_limits<double>::quiet_NaN())},
        {"inf", Value::float64(std::numeric_limits<double>::infinity())},
        {"ninf", Value::float32(-std::numeric_limits<float>::infinity())},
        {"price", Value::float64(15.0)},
        {"region", Value::string("EU")},
        {"empty", Value::string("")},
        {"quote", Value::string("it's")},
        {"pat", Value::string("a_b%c")},
        {"meta", Value::string("%_!\\''%")},
        {"nulbyte", Value::string("a\0%_b"sv)},
        {"uni", Value::string("h\xC3\xA9llo \xE2\x82\xAC\xF0\x9F\x98\x80")},
        {"num_str", Value::string("5")},
        {"raw", Value::bytes("EU")},
        {"ch", Value::character(u'A')},
        {"JMSPriority", Value::int32(7)},
        {"JMSType", Value::string("order")},
        {"JMSDeliveryMode", Value::string("PERSISTENT")},
        {"JMSRedelivered", Value::boolean(false)},
        {"JMSTimestamp", Value::int64(1'700'000'000'123LL)},
        {"JMSCorrelationID", Value::null()},
    };
    for (const auto& p : kProps)
      if (p.name == n) return p.v;
    return Value::null();
  }
};

class EmptySource final : public PropertySource {
 public:
  Value get(std::string_view) const noexcept override { return Value::null(); }
};

/// One property `s`, for the LIKE oracle.
class OneString final : public PropertySource {
 public:
  explicit OneString(std::string_view v) : v_(v) {}
  Value get(std::string_view n) const noexcept override { return n == "s" ? Value::string(v_) : Value::null(); }

 private:
  std::string_view v_;
};

/// A parse error must be InvalidArgument and say it is about the selector.
void check_error(const shmbus::Error& e) {
  FUZZ_CHECK(e.code() == shmbus::ErrorCode::InvalidArgument);
  const std::string_view what = e.what();
  FUZZ_CHECK(what.starts_with("selector syntax error at position ") || what.starts_with("selector too long: "));
}

/// parse(), with every outcome other than a value or shmbus::Error trapped as a bug.
std::optional<Selector> parse(std::string_view text) {
  try {
    return Selector::parse(text);
  } catch (const shmbus::Error& e) {
    check_error(e);
    return std::nullopt;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Selector::parse threw %s: %s\n", typeid(e).name(), e.what());
    FUZZ_FAIL("an exception other than shmbus::Error escaped Selector::parse");
  } catch (...) {
    FUZZ_FAIL("a non-std exception escaped Selector::parse");
  }
  return std::nullopt;
}

// --- LIKE reference ---------------------------------------------------------------------------------

struct PatElem {
  enum Kind : std::uint8_t { Lit, One, Any } kind;
  char c;
};

/// The textbook dynamic program over bytes (the oracle runs on ASCII only: a character is a byte).
/// m[i][k]: s[i..] matches p[k..].
bool ref_like(const std::vector<PatElem>& p, std::string_view s) {
  const std::size_t n = s.size(), np = p.size();
  std::vector<char> m((n + 1) * (np + 1), 0);
  auto at = [&](std::size_t i, std::size_t k) -> char& { return m[i * (np + 1) + k]; };
  at(n, np) = 1;
  for (std::size_t i = n + 1; i-- > 0;) {
    for (std::size_t k = np; k-- > 0;) {
      switch (p[k].kind) {
        case PatElem::Any: at(i, k) = at(i, k + 1) || (i < n && at(i + 1, k)); break;
        case PatElem::One: at(i, k) = i < n && at(i + 1, k + 1); break;
        case PatElem::Lit: at(i, k) = i < n && s[i] == p[k].c && at(i + 1, k + 1); break;
      }
    }
  }
  return at(0, 0) != 0;
}

/// C-style escapes for the report.
std::string printable(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out.push_back(ch);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

void check_like_oracle(std::string_view text) {
  if (text.size() > 200) return;
  for (char ch : text)
    if (static_cast<unsigned char>(ch) >= 0x80) return;
  const std::size_t bar = text.find('|');
  const std::string_view pattern = text.substr(0, bar);
  const std::string_view subject = bar == std::string_view::npos ? std::string_view{} : text.substr(bar + 1);

  std::vector<PatElem> ref;
  bool dangling = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char ch = pattern[i];
    if (ch == '!') {
      if (i + 1 == pattern.size()) {
        dangling = true;
        break;
      }
      ref.push_back({PatElem::Lit, pattern[++i]});
    } else if (ch == '_') {
      ref.push_back({PatElem::One, 0});
    } else if (ch == '%') {
      ref.push_back({PatElem::Any, 0});
    } else {
      ref.push_back({PatElem::Lit, ch});
    }
  }

  std::string sel = "s LIKE '";
  for (char ch : pattern) {
    sel.push_back(ch);
    if (ch == '\'') sel.push_back('\'');
  }
  sel += "' ESCAPE '!'";
  std::optional<Selector> like;
  try {
    like = Selector::parse(sel);
  } catch (const shmbus::Error& e) {
    check_error(e);
  }
  FUZZ_CHECK(like.has_value() == !dangling);
  if (!like) return;
  const bool want = ref_like(ref, subject);
  const bool got = like->matches(OneString(subject));
  if (got != want) {
    std::fprintf(stderr, "LIKE disagrees with the reference: selector \"%s\" on s = \"%s\": got %s, want %s\n",
                 printable(sel).c_str(), printable(subject).c_str(), got ? "TRUE" : "FALSE", want ? "TRUE" : "FALSE");
  }
  FUZZ_CHECK(got == want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = input.find("SHMF");
  const std::string_view text_part = input.substr(0, cut);

  // The text from an exact-size heap copy: an overread of it is an ASan report.
  const Exact text_copy(text_part.data(), text_part.size());
  const std::string_view text(reinterpret_cast<const char*>(text_copy.span().data()), text_copy.size());

  check_like_oracle(text);

  const std::optional<Selector> sel = parse(text);
  if (!sel) return 0;
  FUZZ_CHECK(sel->text() == text);

  const FixedSource fixed;
  const EmptySource none;
  const bool m_fixed = sel->matches(fixed);
  const bool m_none = sel->matches(none);
  FUZZ_CHECK(sel->matches(fixed) == m_fixed);  // deterministic
  const Selector copy = *sel;
  FUZZ_CHECK(copy.text() == text && copy.matches(fixed) == m_fixed && copy.matches(none) == m_none);
  if (sel->matches_all()) FUZZ_CHECK(m_fixed && m_none);

  // NOT (X): parses unless the extra level or length crosses a limit, and never matches with X.
  std::optional<Selector> neg;
  if (!sel->matches_all()) {
    try {
      neg = Selector::parse("NOT (" + std::string(text) + ")");
    } catch (const shmbus::Error& e) {
      check_error(e);
      const std::string_view what = e.what();
      FUZZ_CHECK(what.find("nested too deep") != std::string_view::npos || what.starts_with("selector too long"));
    }
    if (neg) {
      FUZZ_CHECK(!(m_fixed && neg->matches(fixed)));
      FUZZ_CHECK(!(m_none && neg->matches(none)));
    }
  }

  // The frame after the text, read from its own exact-size copy; the selector runs on its reader.
  if (cut != std::string_view::npos) {
    const Exact frame(data + cut, size - cut);
    FrameReader r;
    if (r.open(frame.span()) == DecodeStatus::Ok) {
      const bool m = sel->matches(r);
      FUZZ_CHECK(sel->matches(r) == m);
      if (neg) FUZZ_CHECK(!(m && neg->matches(r)));
    }
  }
  return 0;
}
