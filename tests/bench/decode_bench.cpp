// Times the decoders on adversarial bodies built in memory (not a test): decode, parseEvent
// (which stringifies data) and the tree's own stringify, for SPEC §4 limit tuning. Run it
// under `/usr/bin/time -v` for peak RSS:
//   decode_bench form-nested|form-wide|json-nested|json-wide|FILE [REPEAT]
// A FILE is decoded as JSON when it starts with '{', as a form otherwise. With REPEAT, the body
// is decoded and parsed that many times and the mean of one decode + parseEvent is printed
// (for a typical small event, e.g. tests/data/03-ONCRMDEALADD.form, whose single run is µs).

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <variant>

#include "body_decoder.h"
#include "event_parser.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMiB = 1024 * 1024;
constexpr const char* kAuth = "auth[member_id]=m&auth[application_token]=t&event=ONX";
constexpr const char* kJsonAuth =
    R"("event":"ONX","auth":{"member_id":"m","application_token":"t"},)";

// 10,000 - 3 top-level names, each 32 named bracket levels deep: every level a new map.
std::string formNested() {
  std::string body = kAuth;
  for (int i = 0; i < 9997; ++i) {
    body += "&n" + std::to_string(i);
    for (int level = 1; level <= 32; ++level) body += "[b]";
    body += "=v";
  }
  return body;
}

// 10,000 - 3 distinct keys in one map.
std::string formWide() {
  std::string body = kAuth;
  for (int i = 0; i < 9997; ++i) body += "&data[key" + std::to_string(i) + "]=v";
  return body;
}

// 10,000 - 3 leaves under data, each the innermost of 31 nested arrays.
std::string jsonNested() {
  std::string body = "{" + std::string(kJsonAuth) + R"("data":[)";
  for (int i = 0; i < 9997; ++i) {
    if (i > 0) body += ',';
    body += std::string(31, '[') + std::string(31, ']');
  }
  return body + "]}";
}

std::string jsonWide() {
  std::string body = "{" + std::string(kJsonAuth) + R"("data":{)";
  for (int i = 0; i < 9997; ++i) {
    if (i > 0) body += ',';
    body += "\"key" + std::to_string(i) + "\":\"v\"";
  }
  return body + "}}";
}

double millisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::cerr << "usage: decode_bench form-nested|form-wide|json-nested|json-wide|FILE"
                 " [REPEAT]\n";
    return 2;
  }
  const std::string kind = argv[1];
  std::string body;
  if (kind == "form-nested") {
    body = formNested();
  } else if (kind == "form-wide") {
    body = formWide();
  } else if (kind == "json-nested") {
    body = jsonNested();
  } else if (kind == "json-wide") {
    body = jsonWide();
  } else {
    std::ifstream in(kind, std::ios::binary);
    if (!in) {
      std::cerr << "cannot read " << kind << "\n";
      return 2;
    }
    std::ostringstream content;
    content << in.rdbuf();
    body = content.str();
  }
  if (body.size() > kMiB) std::cerr << "warning: body exceeds 1 MiB\n";

  const bool json = !body.empty() && body[0] == '{';
  if (argc == 3) {
    const long repeat = std::stol(argv[2]);
    std::size_t sink = 0;  // keeps the work from being optimized away
    const auto begin = Clock::now();
    for (long i = 0; i < repeat; ++i) {
      b24es::DecodedBody d =
          json ? b24es::decodeJsonBody(body, {}) : b24es::decodeFormBody(body, {});
      if (!d.root) continue;
      const auto parsed = b24es::parseEvent(*d.root, 0);
      if (const auto* e = std::get_if<b24es::IncomingEvent>(&parsed)) sink += e->dataJson.size();
    }
    std::printf("body %zu bytes, %ld runs, decode + parseEvent %.2f us each (%zu)\n", body.size(),
                repeat, millisSince(begin) * 1000.0 / static_cast<double>(repeat), sink);
    return 0;
  }
  auto start = Clock::now();
  b24es::DecodedBody decoded =  // not const: the tree is moved into parseEvent below, not copied
      json ? b24es::decodeJsonBody(body, {}) : b24es::decodeFormBody(body, {});
  const double decodeMs = millisSince(start);
  std::printf("body %zu bytes (%s), decode %.1f ms", body.size(), json ? "json" : "form", decodeMs);
  if (decoded.error) {
    std::printf(", rejected: %s\n", decoded.error->code.c_str());
    return 0;
  }
  start = Clock::now();
  const std::string written = b24es::toJson(*decoded.root);
  const double writeMs = millisSince(start);
  b24es::BodyValue root = std::move(*decoded.root);
  start = Clock::now();
  const auto parsed = b24es::parseEvent(root, 0);
  const double parseMs = millisSince(start);
  std::printf(", toJson %.1f ms (%zu bytes), parseEvent %.1f ms (%s)\n", writeMs, written.size(),
              parseMs, std::holds_alternative<b24es::IncomingEvent>(parsed) ? "event" : "error");
  return 0;
}
