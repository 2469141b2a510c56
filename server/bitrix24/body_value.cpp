#include "body_value.h"

#include <utility>

namespace b24es {

BodyValue BodyValue::string(std::string value) {
  BodyValue out;
  out.type = Type::kString;
  out.text = std::move(value);
  return out;
}

BodyValue BodyValue::container(Type type) {
  BodyValue out;
  out.type = type;
  return out;
}

const BodyValue* BodyValue::find(std::string_view key) const {
  if (type != Type::kObject) return nullptr;
  for (const BodyMember& member : members) {
    if (member.key == key) return &member.value;
  }
  return nullptr;
}

BodyValue* BodyValue::find(std::string_view key) {
  return const_cast<BodyValue*>(static_cast<const BodyValue&>(*this).find(key));
}

void appendJsonString(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back('"');
  std::size_t run = 0;  // start of the bytes not yet copied
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.substr(run, i - run));
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        const char escape[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(escape, sizeof escape);
      }
    }
  }
  out.append(text.substr(run));
  out.push_back('"');
}

void appendJson(const BodyValue& value, std::string& out) {
  switch (value.type) {
    case BodyValue::Type::kNull:
      out.append("null");
      return;
    case BodyValue::Type::kFalse:
      out.append("false");
      return;
    case BodyValue::Type::kTrue:
      out.append("true");
      return;
    case BodyValue::Type::kInteger:
    case BodyValue::Type::kReal:
      out.append(value.text);
      return;
    case BodyValue::Type::kString:
      appendJsonString(value.text, out);
      return;
    case BodyValue::Type::kObject:
    case BodyValue::Type::kArray:
      break;
  }
  const bool isObject = value.type == BodyValue::Type::kObject;
  out.push_back(isObject ? '{' : '[');
  bool first = true;
  for (const BodyMember& member : value.members) {
    if (!first) out.push_back(',');
    first = false;
    if (isObject) {
      appendJsonString(member.key, out);
      out.push_back(':');
    }
    appendJson(member.value, out);
  }
  out.push_back(isObject ? '}' : ']');
}

std::string toJson(const BodyValue& value) {
  std::string out;
  out.reserve(512);  // most event data is a few hundred bytes: saves the first regrowths
  appendJson(value, out);
  return out;
}

}  // namespace b24es
