#include "access_log.h"

#include <Poco/Exception.h>
#include <Poco/Logger.h>
#include <Poco/NumberFormatter.h>
#include <Poco/String.h>

#include <algorithm>

namespace b24es {
namespace {

Poco::Logger& accessLogger() {
  static Poco::Logger& logger = Poco::Logger::get("b24es.access");
  return logger;
}

// A header's address as a string, when it is one; X-Forwarded-For lists every hop, the last
// one added by the trusted proxy itself.
std::optional<std::string> addressIn(const std::string& value, bool last) {
  std::string item = value;
  if (last) {
    std::string::size_type comma = value.rfind(',');
    if (comma != std::string::npos) item = value.substr(comma + 1);
  }
  item = Poco::trim(item);
  Poco::Net::IPAddress address;
  if (Poco::Net::IPAddress::tryParse(item, address)) return address.toString();
  return std::nullopt;
}

}  // namespace

LogFields accessFields(const AccessRecord& r) {
  LogFields fields = {
      {"listener", r.listener},
      {"client", logValue(r.client)},
      {"method", logValue(r.method)},
      {"path", logValue(r.path)},
      {"status", std::to_string(r.status), true},
      {"bytes", std::to_string(r.bytes), true},
      {"duration_ms", Poco::NumberFormatter::format(r.durationMs, 3), true},
  };
  if (!r.memberId.empty()) fields.push_back({"member_id", logValue(r.memberId)});
  if (!r.event.empty()) fields.push_back({"event", logValue(r.event)});
  if (r.storedId) fields.push_back({"id", std::to_string(*r.storedId), true});
  return fields;
}

bool accessLogOn() { return accessLogger().information(); }

void logAccess(const AccessRecord& record) {
  if (!accessLogOn()) return;
  logWithFields(accessLogger(), Poco::Message::PRIO_INFORMATION, "request", accessFields(record));
}

std::string resolveClient(const Poco::Net::SocketAddress& peer,
                          const Poco::Net::HTTPRequest* request,
                          const std::vector<Poco::Net::IPAddress>& trusted) {
  const Poco::Net::IPAddress host = peer.host();
  if (request && std::find(trusted.begin(), trusted.end(), host) != trusted.end()) {
    if (request->has("X-Forwarded-For")) {
      if (auto a = addressIn(request->get("X-Forwarded-For"), true)) return *a;
    }
    if (request->has("X-Real-IP")) {
      if (auto a = addressIn(request->get("X-Real-IP"), false)) return *a;
    }
  }
  return host.toString();
}

std::vector<Poco::Net::IPAddress> parseTrustedProxies(const std::vector<std::string>& addresses) {
  std::vector<Poco::Net::IPAddress> out;
  for (const std::string& a : addresses) {
    Poco::Net::IPAddress address;
    if (!Poco::Net::IPAddress::tryParse(a, address)) {
      throw Poco::SyntaxException("ingest.trusted_proxies: not an IP address: " + a);
    }
    out.push_back(address);
  }
  return out;
}

RequestNotes* notesOf(Poco::Net::HTTPServerResponse& response) {
  return dynamic_cast<RequestNotes*>(&response);
}

}  // namespace b24es
