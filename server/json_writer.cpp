#include "json_writer.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <sstream>

namespace b24es {
namespace {

void writeObject(const Poco::JSON::Object& object, std::ostream& out) {
  // getNames lists the keys in the order stringify would (insertion order or sorted) in one pass;
  // each get() is then a map lookup.
  Poco::JSON::Object::NameList names;
  object.getNames(names);
  out << '{';
  bool first = true;
  for (const std::string& name : names) {
    if (!first) out << ',';
    first = false;
    Poco::JSON::Stringifier::formatString(name, out, Poco::JSON_WRAP_STRINGS);
    out << ':';
    writeCondensedJson(object.get(name), out);
  }
  out << '}';
}

void writeArray(const Poco::JSON::Array& array, std::ostream& out) {
  out << '[';
  bool first = true;
  for (const Poco::Dynamic::Var& item : array) {
    if (!first) out << ',';
    first = false;
    writeCondensedJson(item, out);
  }
  out << ']';
}

}  // namespace

void writeCondensedJson(const Poco::Dynamic::Var& value, std::ostream& out) {
  const std::type_info& type = value.type();
  if (type == typeid(Poco::JSON::Object::Ptr)) {
    const auto& object = value.extract<Poco::JSON::Object::Ptr>();
    if (object) return writeObject(*object, out);
  } else if (type == typeid(Poco::JSON::Object)) {
    return writeObject(value.extract<Poco::JSON::Object>(), out);
  } else if (type == typeid(Poco::JSON::Array::Ptr)) {
    const auto& array = value.extract<Poco::JSON::Array::Ptr>();
    if (array) return writeArray(*array, out);
  } else if (type == typeid(Poco::JSON::Array)) {
    return writeArray(value.extract<Poco::JSON::Array>(), out);
  }
  Poco::JSON::Stringifier::condense(value, out);
}

std::string condensedJson(const Poco::Dynamic::Var& value) {
  std::ostringstream out;
  writeCondensedJson(value, out);
  return out.str();
}

}  // namespace b24es
