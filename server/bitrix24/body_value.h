// The decoded body of an event POST as a small tree: what the body decoders (body_decoder.h)
// build, what parseEvent (event_parser.h) reads and redacts, and what is written back as the
// stored `data` JSON.
//
// Written by hand instead of using Poco::JSON::Object/Array: on the ingest hot path, building
// POCO's tree (a Dynamic::Var holder and a copy of every string per level, an order-preserving
// ListMap per object) and writing it back through an ostream cost ~23 µs of the ~82 µs of CPU an
// ingest request used (perf, issue 6), more than the HTTP exchange itself. This tree moves the
// decoded strings in and writes its JSON into one std::string. POCO still parses JSON bodies
// (Poco::JSON::Parser with a handler that builds this tree).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace b24es {

struct BodyMember;

struct BodyValue {
  enum class Type : std::uint8_t {
    kNull,
    kFalse,
    kTrue,
    kInteger,
    kReal,
    kString,
    kObject,
    kArray
  };

  Type type = Type::kNull;
  // kString: the value (valid UTF-8); kInteger and kReal: the number as JSON writes it.
  std::string text;
  // kObject: the members in order, keys unique; kArray: the items in order, keys empty.
  std::vector<BodyMember> members;

  static BodyValue string(std::string value);
  static BodyValue object() { return container(Type::kObject); }
  static BodyValue array() { return container(Type::kArray); }

  bool isObject() const { return type == Type::kObject; }
  bool isNull() const { return type == Type::kNull; }

  // The member of an object with this key (exact match), or nullptr when absent or when this
  // is not an object. Linear in the number of members: meant for the few keys parseEvent reads.
  const BodyValue* find(std::string_view key) const;
  BodyValue* find(std::string_view key);

 private:
  static BodyValue container(Type type);
};

struct BodyMember {
  std::string key;
  BodyValue value;
};

// Appends `value` as condensed JSON: members in order, strings escaped as Poco::JSON writes them
// ('"', '\\', \b \f \n \r \t, other bytes below 0x20 as \u00XX; everything else, UTF-8 included,
// as it is), numbers as their stored text. Recursion depth is the tree's depth, which the
// decoders bound (SPEC §4: 32). Cannot fail (only std::bad_alloc can escape). Thread-safe for
// distinct output strings.
void appendJson(const BodyValue& value, std::string& out);

// The same, as a new string.
std::string toJson(const BodyValue& value);

// Appends `text` as a quoted, escaped JSON string, escaped as appendJson does.
void appendJsonString(std::string_view text, std::string& out);

}  // namespace b24es
