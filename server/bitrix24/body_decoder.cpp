// Decoding of Bitrix24 event bodies; see body_decoder.h for the contract and SPEC §4 for the rules.
#include "body_decoder.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Handler.h>
#include <Poco/JSON/JSONException.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/SharedPtr.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

namespace b24es {
namespace {

// Both decoders recurse once per nesting level (Poco's parser, our tree conversion), so a
// misconfigured huge maxDepth must not turn hostile input into a stack overflow.
constexpr std::size_t kDepthCeiling = 1024;

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

std::size_t effectiveMaxDepth(const DecodeLimits& limits) {
  return std::min(limits.maxDepth, kDepthCeiling);
}

DecodedBody failure(const char* code, std::string message) {
  DecodedBody out;
  out.error = DecodeError{code, std::move(message)};
  return out;
}

DecodedBody malformed(std::string message) { return failure("malformed_body", std::move(message)); }

DecodedBody tooDeep(const DecodeLimits& limits) {
  return failure("nesting_too_deep", "The body nests deeper than " +
                                         std::to_string(effectiveMaxDepth(limits)) + " levels.");
}

DecodedBody tooManyFields(const DecodeLimits& limits) {
  return failure("too_many_fields",
                 "The body has more than " + std::to_string(limits.maxPairs) + " fields.");
}

int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of the well-formed UTF-8 sequence starting at in[pos] (Unicode Table 3-7), 0 if none.
std::size_t wellFormedSequenceLength(std::string_view in, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(in[pos]);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  // The allowed range of the second byte is what excludes overlongs, surrogates and > U+10FFFF.
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    low = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3;
    high = 0x9F;
  } else if (lead == 0xF0) {
    length = 4;
    low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    high = 0x8F;
  } else {
    return 0;
  }
  if (in.size() - pos < length) return 0;
  const auto second = static_cast<unsigned char>(in[pos + 1]);
  if (second < low || second > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if ((static_cast<unsigned char>(in[pos + i]) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// ---------------------------------------------------------------------------------------------
// Form bodies: an in-memory model of the PHP array that parse_str would build.

// PHP's zend_symtable rules: only canonical decimal integers that fit in int64 become integer
// keys, so "01", "+1", " 1" and "-0" stay strings.
bool parsePhpIntegerKey(const std::string& text, std::int64_t* value) {
  std::size_t pos = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) pos = 1;
  if (pos >= text.size() || text[pos] < '0' || text[pos] > '9') return false;
  if (text[pos] == '0' && text.size() > 1) return false;
  std::uint64_t magnitude = 0;
  constexpr std::uint64_t kLimit = std::uint64_t{1} << 63;  // |INT64_MIN|
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (magnitude > (kLimit - digit) / 10) return false;
    magnitude = magnitude * 10 + digit;
  }
  if (negative) {
    *value = magnitude == kLimit ? std::numeric_limits<std::int64_t>::min()
                                 : -static_cast<std::int64_t>(magnitude);
    return true;
  }
  if (magnitude >= kLimit) return false;
  *value = static_cast<std::int64_t>(magnitude);
  return true;
}

struct FormKey {
  std::string text;  // integer keys in canonical decimal form, so text alone identifies a key
  bool isInteger = false;
  std::int64_t integer = 0;
};

FormKey makeFormKey(std::string text) {
  FormKey key;
  key.isInteger = parsePhpIntegerKey(text, &key.integer);
  key.text = std::move(text);
  return key;
}

class FormMap;

struct FormValue {
  std::string scalar;
  std::unique_ptr<FormMap> map;  // set when the value is a nested array
};

struct FormEntry {
  FormKey key;
  FormValue value;
};

// Finds a key among the keys of an insertion-ordered container whose keys never change once
// added: a linear scan while there are few, a hash index past kLinearKeys (one level of a body
// can hold ~10,000 keys). The index catches up with keys added since the last lookup by itself.
class KeyIndex {
 public:
  static constexpr std::size_t kLinearKeys = 32;

  // The position of `key` among the first `size` keys, keyAt(i) being the i-th; `size` when it
  // is not there.
  template <typename KeyAt>
  std::size_t find(std::string_view key, std::size_t size, KeyAt keyAt) {
    if (size <= kLinearKeys) {
      for (std::size_t i = 0; i < size; ++i) {
        if (keyAt(i) == key) return i;
      }
      return size;
    }
    if (!index_) index_ = std::make_unique<std::unordered_map<std::string, std::size_t>>();
    for (std::size_t i = index_->size(); i < size; ++i) index_->emplace(keyAt(i), i);
    const auto it = index_->find(std::string(key));
    return it == index_->end() ? size : it->second;
  }

 private:
  // key -> position; allocated only past kLinearKeys, because most maps never get there and a
  // body may hold 320,000 of them (an empty unordered_map is 56 bytes, the pointer 8).
  std::unique_ptr<std::unordered_map<std::string, std::size_t>> index_;
};

// An insertion-ordered map like a PHP array.
class FormMap {
 public:
  const std::vector<FormEntry>& entries() const { return entries_; }
  // For moving the decoded strings out once the map is complete; the index is left stale.
  std::vector<FormEntry>& mutableEntries() { return entries_; }

  // The returned pointer is valid until the next insertion into this map. Allocates the key
  // only when it is new.
  FormValue& findOrInsert(std::string_view text) {
    if (FormValue* existing = find(text)) return *existing;
    return insert(makeFormKey(std::string(text)));
  }

  // PHP's `$a[] = ...`; nullptr when PHP would refuse because the next index is taken (only
  // possible after the key INT64_MAX), in which case PHP drops the pair.
  FormValue* append() {
    const std::int64_t next = nextFree_ == kNoIntegerKeyYet ? 0 : nextFree_;
    FormKey key;
    key.text = std::to_string(next);
    key.isInteger = true;
    key.integer = next;
    if (find(key.text) != nullptr) return nullptr;
    return &insert(std::move(key));
  }

 private:
  static constexpr std::int64_t kNoIntegerKeyYet = std::numeric_limits<std::int64_t>::min();

  FormValue* find(std::string_view text) {
    const std::size_t at =
        index_.find(text, entries_.size(),
                    [this](std::size_t i) -> const std::string& { return entries_[i].key.text; });
    return at == entries_.size() ? nullptr : &entries_[at].value;
  }

  FormValue& insert(FormKey key) {
    // Mirrors PHP's nNextFreeElement: the largest integer key so far + 1, negatives included.
    if (key.isInteger && key.integer >= nextFree_) {
      nextFree_ = key.integer < std::numeric_limits<std::int64_t>::max()
                      ? key.integer + 1
                      : std::numeric_limits<std::int64_t>::max();
    }
    entries_.push_back(FormEntry{std::move(key), FormValue{}});
    return entries_.back().value;
  }

  std::vector<FormEntry> entries_;
  KeyIndex index_;
  std::int64_t nextFree_ = kNoIntegerKeyYet;
};

// A decoded key split like php_register_variable_ex does: path[0] is the base name, every
// further element one bracket level, std::nullopt standing for "[]". The names are views into
// the buffer parseFormKey was given; a ParsedKey is reused from pair to pair, so that decoding a
// key allocates nothing once the first few pairs have sized it.
struct ParsedKey {
  enum class Outcome { kAssign, kSkip, kTooDeep };
  Outcome outcome = Outcome::kSkip;
  std::vector<std::optional<std::string_view>> path;
  // kAssign: the level PHP refuses (a forbidden name, see forbiddenLevel) or path.size(). The
  // levels above it are still created as arrays, as PHP creates them before it looks further.
  std::size_t stopAt = 0;
};

bool isPhpNameMangled(char c) { return c == ' ' || c == '.'; }

// isspace() in the "C" locale, which is what PHP's `isspace(*ip)` before a ']' tests: PHP never
// sets LC_CTYPE from the environment, and the server must not depend on its own locale.
bool isPhpSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// PHP 8.2 (since 8.1.11 / 8.0.24, the fix for CVE-2022-31629 that keeps mangling from forging
// "__Host-" cookies) drops a pair when a level's name starts with "__Host-" or "__Secure-" but
// the whole key, before mangling, does not: "data[__Host-x]=1" sets nothing. Returns the first
// such level, or path.size().
std::size_t forbiddenLevel(const std::vector<std::optional<std::string_view>>& path, bool keyIsHost,
                           bool keyIsSecure) {
  static constexpr std::string_view kHost = "__Host-";
  static constexpr std::string_view kSecure = "__Secure-";
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (!path[i] || path[i]->empty() || path[i]->front() != '_') continue;  // "[]" is no name
    if ((!keyIsHost && startsWith(*path[i], kHost)) ||
        (!keyIsSecure && startsWith(*path[i], kSecure))) {
      return i;
    }
  }
  return path.size();
}

// Splits the decoded key in `key` (edited in place: PHP's name mangling) into `out`.
void parseFormKey(std::string& key, std::size_t maxDepth, ParsedKey& out) {
  out.outcome = ParsedKey::Outcome::kSkip;
  out.path.clear();
  // PHP handles the name as a C string, so a decoded %00 ends it.
  if (const std::size_t nul = key.find('\0'); nul != std::string::npos) key.resize(nul);
  const std::size_t start = key.find_first_not_of(' ');
  if (start == std::string::npos) return;
  key.erase(0, start);
  const bool keyIsHost = startsWith(key, "__Host-");
  const bool keyIsSecure = startsWith(key, "__Secure-");
  // Every return below that assigns goes through here.
  const auto finish = [&] { out.stopAt = forbiddenLevel(out.path, keyIsHost, keyIsSecure); };

  std::size_t open = 0;
  while (open < key.size() && key[open] != '[') {
    if (isPhpNameMangled(key[open])) key[open] = '_';
    ++open;
  }
  if (open == 0) return;
  out.outcome = ParsedKey::Outcome::kAssign;
  const std::string_view whole(key);
  out.path.emplace_back(whole.substr(0, open));
  if (open == key.size()) return finish();

  while (true) {
    const std::size_t indexStart = open + 1;
    std::size_t probe = indexStart;
    // PHP skips one whitespace character before testing for "]", so "[ ]" and "[\t]" append
    // like "[]" (while "[ x]" keeps its space: the index starts before the skipped character).
    if (probe < key.size() && isPhpSpace(key[probe])) ++probe;
    std::size_t close = probe;
    std::optional<std::string_view> index;
    if (probe >= key.size() || key[probe] != ']') {
      close = key.find(']', probe);
      if (close == std::string::npos) {
        // An unclosed first bracket makes the whole key a plain name ("a[b" -> "a_b"); a later
        // unclosed bracket just ends the key at the previous level, as in PHP.
        if (out.path.size() == 1) {
          for (std::size_t i = open; i < key.size(); ++i) {
            if (isPhpNameMangled(key[i]) || key[i] == '[') key[i] = '_';
          }
          out.path[0] = whole;
        }
        return finish();
      }
      index = whole.substr(indexStart, close - indexStart);
    }
    // Checked before growing the path so a megabyte of "[]" costs at most maxDepth steps.
    if (out.path.size() > maxDepth) {
      out.outcome = ParsedKey::Outcome::kTooDeep;
      out.path.clear();
      return;
    }
    out.path.push_back(index);
    // Whatever follows "]" other than "[" is ignored, as in PHP ("a[b]c" is "a[b]").
    if (close + 1 >= key.size() || key[close + 1] != '[') return finish();
    open = close + 1;
  }
}

// $_POST[path...] = value as php_register_variable_ex does it, up to key.stopAt. At most
// path.size() map steps, so a whole body costs at most maxPairs × (maxDepth + 1) of them.
void assignFormValue(FormMap& root, const ParsedKey& key, std::string value) {
  const auto& path = key.path;
  FormMap* current = &root;
  for (std::size_t i = 0; i < key.stopAt; ++i) {
    FormValue* slot = nullptr;
    if (path[i]) {
      slot = &current->findOrInsert(*path[i]);
    } else {
      slot = current->append();
      if (slot == nullptr) return;
    }
    if (i + 1 == path.size()) {
      // Assigning a scalar over a nested array replaces it in place, as PHP does.
      slot->map.reset();
      slot->scalar = std::move(value);
      return;
    }
    if (!slot->map) {
      slot->scalar.clear();
      slot->map = std::make_unique<FormMap>();
    }
    current = slot->map.get();
  }
}

// PHP's zend_array_is_list, which json_encode follows: the empty array is a list ("[]").
bool isList(const FormMap& map) {
  const auto& entries = map.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const FormKey& key = entries[i].key;
    if (!key.isInteger || key.integer != static_cast<std::int64_t>(i)) return false;
  }
  return true;
}

// Moves a decoded PHP array into a BodyValue: a list (keys 0..n-1) becomes an array, anything
// else an object, as PHP's json_encode would write it. `forceObject` for the top level.
BodyValue toBodyValue(FormMap& map, bool forceObject) {
  const bool list = !forceObject && isList(map);
  BodyValue out = list ? BodyValue::array() : BodyValue::object();
  std::vector<FormEntry>& entries = map.mutableEntries();
  out.members.reserve(entries.size());
  for (FormEntry& entry : entries) {
    BodyMember& member = out.members.emplace_back();
    if (!list) member.key = std::move(entry.key.text);
    if (entry.value.map) {
      member.value = toBodyValue(*entry.value.map, false);
      // Freed as soon as it is converted, so the two trees never both exist whole (a body of
      // 10,000 keys 32 levels deep holds 320,000 maps).
      entry.value.map.reset();
    } else {
      member.value = BodyValue::string(std::move(entry.value.scalar));
    }
  }
  return out;
}

// Calls visit(segment) for every non-empty '&'-separated segment; stops early when visit
// returns false.
template <typename Visit>
void forEachSegment(std::string_view body, Visit visit) {
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find('&', pos);
    if (end == std::string_view::npos) end = body.size();
    if (end > pos && !visit(body.substr(pos, end - pos))) return;
    pos = end + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON bodies.

// Builds a BodyValue from Poco's JSON parser events, as Poco::JSON::ParseHandler(true) builds
// its Object tree: key order kept, a later duplicate key replaces the value in the first one's
// place, numbers keep their type (written as Poco writes them).
class BodyValueHandler final : public Poco::JSON::Handler {
 public:
  void reset() override {
    stack_.clear();
    root_ = BodyValue();
    hasRoot_ = false;
  }
  void startObject() override { stack_.push_back(Frame{BodyValue::object(), {}, {}}); }
  void endObject() override { finishContainer(); }
  void startArray() override { stack_.push_back(Frame{BodyValue::array(), {}, {}}); }
  void endArray() override { finishContainer(); }
  void key(const std::string& k) override {
    if (!stack_.empty()) stack_.back().key = k;
  }
  void null() override { add(BodyValue()); }
  void value(int v) override { add(integer(std::to_string(v))); }
  void value(unsigned v) override { add(integer(std::to_string(v))); }
  void value(Poco::Int64 v) override { add(integer(std::to_string(v))); }
  void value(Poco::UInt64 v) override { add(integer(std::to_string(v))); }
  void value(const std::string& v) override { add(BodyValue::string(v)); }
  void value(double d) override {
    // Rare in Bitrix24 bodies; formatted by Poco so that it reads as it did before this tree.
    BodyValue real;
    real.type = BodyValue::Type::kReal;
    std::ostringstream text;
    Poco::JSON::Stringifier::condense(Poco::Dynamic::Var(d), text);
    real.text = text.str();
    add(std::move(real));
  }
  void value(bool b) override {
    BodyValue flag;
    flag.type = b ? BodyValue::Type::kTrue : BodyValue::Type::kFalse;
    add(std::move(flag));
  }

  // The parsed top-level value, or nullopt if the document was not complete.
  std::optional<BodyValue> take() {
    if (!hasRoot_) return std::nullopt;
    hasRoot_ = false;
    return std::move(root_);
  }

 private:
  struct Frame {
    BodyValue value;
    std::string key;  // the key of the next member (objects)
    KeyIndex index;   // of value.members (objects)
  };

  static BodyValue integer(std::string text) {
    BodyValue out;
    out.type = BodyValue::Type::kInteger;
    out.text = std::move(text);
    return out;
  }

  void finishContainer() {
    if (stack_.empty()) return;
    BodyValue done = std::move(stack_.back().value);
    stack_.pop_back();
    add(std::move(done));
  }

  void add(BodyValue v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      hasRoot_ = true;
      return;
    }
    Frame& frame = stack_.back();
    std::vector<BodyMember>& members = frame.value.members;
    if (!frame.value.isObject()) {
      members.push_back(BodyMember{{}, std::move(v)});
      return;
    }
    const std::size_t at = frame.index.find(
        frame.key, members.size(),
        [&members](std::size_t i) -> const std::string& { return members[i].key; });
    if (at < members.size()) {
      members[at].value = std::move(v);
      return;
    }
    members.push_back(BodyMember{std::move(frame.key), std::move(v)});
  }

  std::vector<Frame> stack_;
  BodyValue root_;
  bool hasRoot_ = false;
};

bool isJsonWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Enforces the limits with one linear pass before Poco parses anything, so that a hostile
// document is refused before it costs a tree. Depth is the bracket nesting outside strings; for a
// well-formed document the number of leaves (scalars and empty containers) is exactly commas + 1,
// since every container with k children holds k - 1 commas. Returns the error, or nothing when
// within limits.
std::optional<DecodedBody> checkJsonLimits(const std::string& text, std::size_t rootPos,
                                           const DecodeLimits& limits) {
  const std::size_t maxDepth = effectiveMaxDepth(limits);
  std::size_t afterRoot = rootPos + 1;
  while (afterRoot < text.size() && isJsonWhitespace(text[afterRoot])) ++afterRoot;
  const bool emptyRoot = afterRoot < text.size() && text[afterRoot] == '}';

  std::size_t depth = 0;
  std::size_t commas = 0;
  bool inString = false;
  bool escaped = false;
  for (std::size_t i = rootPos; i < text.size(); ++i) {
    const char c = text[i];
    if (inString) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        break;
      case '{':
      case '[':
        ++depth;
        if (depth - 1 > maxDepth) return tooDeep(limits);
        break;
      case '}':
      case ']':
        if (depth > 0) --depth;
        break;
      case ',':
        ++commas;
        if (!emptyRoot && commas >= limits.maxPairs) return tooManyFields(limits);
        break;
      default:
        break;
    }
  }
  if (!emptyRoot && limits.maxPairs == 0) return tooManyFields(limits);
  return std::nullopt;
}

}  // namespace

namespace {

// phpUrlDecode, appending to `out`. Written by hand because Poco::URI::decode throws on malformed
// escapes such as "%ZZ" (PHP keeps them literally) and does not turn '+' into a space.
void phpUrlDecodeAppend(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    // Runs without an escape are copied whole: most of a Bitrix24 value is plain text.
    std::size_t special = i;
    while (special < in.size() && in[special] != '%' && in[special] != '+') ++special;
    out.append(in.substr(i, special - i));
    i = special;
    if (i == in.size()) break;
    if (in[i] == '+') {
      out.push_back(' ');
      ++i;
      continue;
    }
    if (i + 2 < in.size()) {
      const int high = hexDigitValue(in[i + 1]);
      const int low = hexDigitValue(in[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 3;
        continue;
      }
    }
    out.push_back('%');
    ++i;
  }
}

}  // namespace

std::string phpUrlDecode(std::string_view in) {
  std::string out;
  phpUrlDecodeAppend(in, out);
  return out;
}

std::string sanitizeUtf8(std::string_view in) {
  // Text that is all ASCII is valid UTF-8 as it is; only what follows the first non-ASCII byte
  // needs checking.
  std::size_t i = 0;
  while (i < in.size() && static_cast<unsigned char>(in[i]) < 0x80) ++i;
  std::string out(in.substr(0, i));
  if (i == in.size()) return out;
  out.reserve(in.size());
  while (i < in.size()) {
    const std::size_t length = wellFormedSequenceLength(in, i);
    if (length == 0) {
      out.append(kReplacementChar);
      ++i;
    } else {
      out.append(in.substr(i, length));
      i += length;
    }
  }
  return out;
}

namespace {

// phpUrlDecode, then sanitizeUtf8 only when the text has a non-ASCII byte (saves a copy).
std::string decodeText(std::string_view raw) {
  std::string text = phpUrlDecode(raw);
  unsigned char high = 0;
  for (char c : text) high |= static_cast<unsigned char>(c);
  return high < 0x80 ? text : sanitizeUtf8(text);
}

// The same into `out`, reusing its capacity.
void decodeTextInto(std::string_view raw, std::string& out) {
  out.clear();
  phpUrlDecodeAppend(raw, out);
  unsigned char high = 0;
  for (char c : out) high |= static_cast<unsigned char>(c);
  if (high >= 0x80) out = sanitizeUtf8(out);
}

}  // namespace

DecodedBody decodeFormBody(std::string_view body, const DecodeLimits& limits) {
  try {
    // Counting first keeps a body of 10^6 tiny pairs from being decoded only to be rejected.
    std::size_t segments = 0;
    forEachSegment(body, [&](std::string_view) { return ++segments <= limits.maxPairs; });
    if (segments > limits.maxPairs) return tooManyFields(limits);

    const std::size_t maxDepth = effectiveMaxDepth(limits);
    FormMap root;
    bool tooDeepKey = false;
    std::string keyText;  // reused by every pair, as is `key`
    ParsedKey key;
    forEachSegment(body, [&](std::string_view segment) {
      const std::size_t eq = segment.find('=');
      decodeTextInto(segment.substr(0, eq), keyText);
      parseFormKey(keyText, maxDepth, key);
      if (key.outcome == ParsedKey::Outcome::kTooDeep) {
        tooDeepKey = true;
        return false;
      }
      if (key.outcome == ParsedKey::Outcome::kSkip) return true;
      std::string value;
      if (eq != std::string_view::npos) value = decodeText(segment.substr(eq + 1));
      assignFormValue(root, key, std::move(value));
      return true;
    });
    if (tooDeepKey) return tooDeep(limits);

    DecodedBody out;
    out.root = toBodyValue(root, true);
    return out;
  } catch (const std::exception&) {
    return malformed("The form body could not be decoded.");
  }
}

DecodedBody decodeJsonBody(std::string_view body, const DecodeLimits& limits) {
  try {
    const std::string text = sanitizeUtf8(body);
    std::size_t rootPos = 0;
    while (rootPos < text.size() && isJsonWhitespace(text[rootPos])) ++rootPos;
    if (rootPos == text.size() || text[rootPos] != '{') {
      return malformed("The JSON body is not an object.");
    }
    if (auto limitError = checkJsonLimits(text, rootPos, limits)) return std::move(*limitError);

    Poco::SharedPtr<BodyValueHandler> handler = new BodyValueHandler();
    Poco::JSON::Parser parser(handler);
    // The pre-scan already bounds depth; this is a second guard on Poco's own recursion.
    parser.setDepth(effectiveMaxDepth(limits) + 1);
    parser.parse(text);
    std::optional<BodyValue> root = handler->take();
    if (!root || !root->isObject()) return malformed("The JSON body is not an object.");
    DecodedBody out;
    out.root = std::move(root);
    return out;
  } catch (const Poco::JSON::JSONException& e) {
    // Poco reports its depth guard only through this message text.
    if (e.message().find("Maximum depth") != std::string::npos) return tooDeep(limits);
    return malformed("The body is not valid JSON.");
  } catch (const std::exception&) {
    return malformed("The body is not valid JSON.");
  }
}

}  // namespace b24es
