// Condensed JSON output for the Poco::JSON trees the body decoders build, in time linear in the
// size of the tree. Poco 1.11's own Stringifier finds each key of an order-preserving Object by a
// linear scan of the object (Object::getKey), so an object of n keys costs n^2 steps: 230 ms for
// the 10,000 keys SPEC §4 allows in one body, 5 s for 20,000.
#pragma once

#include <Poco/Dynamic/Var.h>

#include <ostream>
#include <string>

namespace b24es {

// Writes `value` to `out` byte for byte as Poco::JSON::Stringifier::condense(value, out) does
// (same order, escaping and number format; objects and arrays with escapeUnicode set are written
// as if it were not, which the decoders never set). Scalars are written by Poco itself.
// Recursion depth is the tree's nesting depth, which the decoders bound (SPEC §4: 32).
// Failure: whatever Poco's scalar formatting throws (Poco::Exception), and stream errors as the
// stream is configured to report them. Thread-safe for distinct trees; does not modify `value`.
void writeCondensedJson(const Poco::Dynamic::Var& value, std::ostream& out);

// The same, as a string.
std::string condensedJson(const Poco::Dynamic::Var& value);

}  // namespace b24es
