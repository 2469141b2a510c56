// libFuzzer target: one input goes through everything a request meets before storage
// (decodeFormBody or decodeJsonBody, parseEvent, verifyEvent against several portal records and
// static token lists) and every step's contract is checked. Built only with -DB24ES_FUZZ=ON and
// clang; run it with scripts/fuzz. An input whose first byte is '{' or JSON whitespace is decoded
// as JSON, any other as a form body, so the samples in tests/data seed the corpus unchanged.
#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/String.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "body_decoder.h"
#include "event_parser.h"
#include "verifier.h"

namespace {

using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

// Portal A's application token in tests/data.
constexpr const char* kPortalToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";
constexpr const char* kStaticToken = "0123456789abcdef0123456789abcdef";
constexpr std::int64_t kNow = 1767261600;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

#define FUZZ_CHECK(condition)           \
  do {                                  \
    if (!(condition)) fail(#condition); \
  } while (0)

bool isUtf8(const std::string& s) { return b24es::sanitizeUtf8(s) == s; }

// SPEC §4 (v2): the token-bearing keys, in any letter case.
bool isSecretKey(const std::string& key) {
  for (const char* secret : {"access_token", "refresh_token", "application_token", "token",
                             "auth_id", "refresh_id", "client_secret"}) {
    if (Poco::icompare(key, secret) == 0) return true;
  }
  return false;
}

// What the decoders promise about a tree they return (body_decoder.h, SPEC §4).
struct TreeStats {
  std::size_t leaves = 0;      // scalars and empty containers
  std::size_t containers = 0;  // objects and arrays below the root
  std::size_t maxDepth = 0;    // deepest container below the root
};

void walk(const b24es::BodyValue& value, std::size_t depth, const b24es::DecodeLimits& limits,
          TreeStats& stats) {
  const bool container =
      value.type == b24es::BodyValue::Type::kObject || value.type == b24es::BodyValue::Type::kArray;
  if (!container) {
    ++stats.leaves;
    if (value.type == b24es::BodyValue::Type::kString) FUZZ_CHECK(isUtf8(value.text));
    return;
  }
  if (depth > 0) {
    ++stats.containers;
    if (depth > stats.maxDepth) stats.maxDepth = depth;
    if (value.members.empty()) ++stats.leaves;
  }
  // Checked before descending so a decoder bug shows up as this message, not a stack overflow.
  FUZZ_CHECK(depth <= limits.maxDepth);
  for (const b24es::BodyMember& member : value.members) {
    FUZZ_CHECK(isUtf8(member.key));
    if (value.type == b24es::BodyValue::Type::kArray) FUZZ_CHECK(member.key.empty());
    walk(member.value, depth + 1, limits, stats);
  }
}

std::string condense(const Var& value) {
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(value, out);
  return out.str();
}

// Everything stored must be valid JSON in valid UTF-8 (SPEC §4). Wrapped in an array so that any
// value parses, whatever its type.
Var reparse(const std::string& json) {
  FUZZ_CHECK(isUtf8(json));
  try {
    Poco::JSON::Parser parser;
    const Var wrapped = parser.parse("[" + json + "]");
    const Array::Ptr array = wrapped.extract<Array::Ptr>();
    FUZZ_CHECK(array->size() == 1);
    return array->get(0);
  } catch (const Poco::Exception&) {
    fail("stringified JSON does not parse back");
  }
}

void checkRedacted(const Var& node) {
  if (node.type() == typeid(Object::Ptr)) {
    for (const auto& member : *node.extract<Object::Ptr>()) {
      if (isSecretKey(member.first)) {
        FUZZ_CHECK(member.second.isString() &&
                   member.second.extract<std::string>() == b24es::kRedacted);
      } else {
        checkRedacted(member.second);
      }
    }
  } else if (node.type() == typeid(Array::Ptr)) {
    for (const Var& item : *node.extract<Array::Ptr>()) checkRedacted(item);
  }
}

void checkVerdict(const b24es::IncomingEvent& event,
                  const std::optional<b24es::PortalRecord>& portal,
                  const std::vector<std::string>& staticTokens) {
  using Action = b24es::Verdict::Action;
  const b24es::Verdict verdict = b24es::verifyEvent(event, portal, staticTokens);
  const std::string& presented = event.applicationToken;
  FUZZ_CHECK((verdict.action == Action::kReject) == !verdict.reason.empty());
  // Reasons are logged and answered: they must never quote the token.
  if (presented.size() >= 4) FUZZ_CHECK(verdict.reason.find(presented) == std::string::npos);
  if (presented.empty()) {
    FUZZ_CHECK(verdict.action == Action::kReject);
    return;
  }
  const bool installed = portal && portal->installed() && portal->applicationToken;
  const bool portalMatch = installed && *portal->applicationToken == presented;
  bool staticMatch = false;
  for (const std::string& token : staticTokens) staticMatch |= !token.empty() && token == presented;

  switch (event.kind) {
    case b24es::EventKind::kInstall:
      FUZZ_CHECK(verdict.action ==
                 (installed && !portalMatch ? Action::kReject : Action::kInstall));
      break;
    case b24es::EventKind::kUninstall:
      FUZZ_CHECK(verdict.action ==
                 (portalMatch || staticMatch ? Action::kUninstall : Action::kReject));
      break;
    case b24es::EventKind::kOther:
      if (!portalMatch && !staticMatch) {
        FUZZ_CHECK(verdict.action == Action::kReject);
      } else {
        FUZZ_CHECK(verdict.action == (portal ? Action::kStore : Action::kStoreAndCreatePortal));
      }
      break;
  }
}

void checkEvent(b24es::IncomingEvent& event) {
  FUZZ_CHECK(!event.event.empty() && !event.memberId.empty());
  FUZZ_CHECK(event.event == Poco::toUpper(event.event));
  FUZZ_CHECK((event.kind == b24es::EventKind::kInstall) == (event.event == "ONAPPINSTALL"));
  FUZZ_CHECK((event.kind == b24es::EventKind::kUninstall) == (event.event == "ONAPPUNINSTALL"));
  for (const b24es::TokenGrant& grant : event.tokens) FUZZ_CHECK(!grant.accessToken.empty());
  checkRedacted(reparse(event.dataJson));

  // Verification against each kind of stored record: none, installed with the presented token,
  // installed with another token, created from a static token (no token stored), uninstalled.
  b24es::PortalRecord installedSame;
  installedSame.memberId = event.memberId;
  installedSame.applicationToken = event.applicationToken;
  installedSame.installedAt = kNow - 10;
  b24es::PortalRecord installedOther = installedSame;
  installedOther.applicationToken = kPortalToken;
  b24es::PortalRecord createdByStatic = installedSame;
  createdByStatic.applicationToken.reset();
  createdByStatic.installedAt.reset();
  b24es::PortalRecord uninstalled = installedSame;
  uninstalled.applicationToken.reset();
  uninstalled.uninstalledAt = kNow - 5;
  const std::optional<b24es::PortalRecord> portals[] = {std::nullopt, installedSame, installedOther,
                                                        createdByStatic, uninstalled};
  const std::vector<std::string> staticTokenLists[] = {
      {}, {kStaticToken}, {"", event.applicationToken}, {kPortalToken, kStaticToken}};
  for (const auto& portal : portals) {
    for (const auto& staticTokens : staticTokenLists) checkVerdict(event, portal, staticTokens);
  }
}

bool looksLikeJson(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return false;
  const char c = static_cast<char>(data[0]);
  return c == '{' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  // The server's depth limit, but a tenth of its pair limit: the counting code is the same for
  // any limit, and at 10,000 a body near the limit costs ~20 ms under the sanitizers, which cut
  // a run from ~450 to ~50 inputs/s. tests/body_decoder_test.cpp covers the 10,000 boundaries at
  // full size.
  b24es::DecodeLimits limits;
  limits.maxPairs = 1000;
  b24es::DecodedBody decoded = looksLikeJson(data, size) ? b24es::decodeJsonBody(body, limits)
                                                         : b24es::decodeFormBody(body, limits);
  FUZZ_CHECK(!decoded.root != !decoded.error);
  if (decoded.error) {
    const std::string& code = decoded.error->code;
    FUZZ_CHECK(code == "malformed_body" || code == "nesting_too_deep" || code == "too_many_fields");
    FUZZ_CHECK(!decoded.error->message.empty() && isUtf8(decoded.error->message));
    if (size >= 8) FUZZ_CHECK(decoded.error->message.find(body) == std::string::npos);
    return 0;
  }

  FUZZ_CHECK(decoded.root->isObject());
  TreeStats stats;
  walk(*decoded.root, 0, limits, stats);
  FUZZ_CHECK(stats.leaves <= limits.maxPairs);
  FUZZ_CHECK(stats.maxDepth <= limits.maxDepth);
  // No container limit (SPEC §4 v2), but the limits bound them: each pair or leaf has at most
  // maxDepth containers above it.
  FUZZ_CHECK(stats.containers <= limits.maxPairs * limits.maxDepth);
  const std::string json = b24es::toJson(*decoded.root);
  FUZZ_CHECK(reparse(json).type() == typeid(Object::Ptr));
  // A JSON body reads as Poco's own tree of it would have written it (Poco's writer is quadratic
  // in the keys of one object, so only for small trees).
  if (looksLikeJson(data, size) && stats.leaves + stats.containers <= 1000) {
    Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));  // key order kept
    parser.setDepth(limits.maxDepth + 1);
    FUZZ_CHECK(json == condense(parser.parse(b24es::sanitizeUtf8(body))));
  }

  b24es::BodyValue root = std::move(*decoded.root);
  auto parsed = b24es::parseEvent(root, kNow);
  if (const auto* error = std::get_if<b24es::ApiError>(&parsed)) {
    // data of any shape is stored (SPEC §4 v2): only a missing field is refused.
    FUZZ_CHECK(error->status == 400 && error->code == "missing_field");
    return 0;
  }
  checkEvent(std::get<b24es::IncomingEvent>(parsed));
  return 0;
}
