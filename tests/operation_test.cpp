// Running it as a service (issue 14, SPEC §2, §3 and §10): the shipped sample configuration,
// per-command help, the log.* keys, the json format, the access log and its client address,
// SIGHUP and SIGUSR1, and readiness through sd_notify. Black-box against the built binary.
#define BOOST_TEST_MODULE operation
#include <boost/test/unit_test.hpp>

#include <Poco/AutoPtr.h>
#include <Poco/Channel.h>
#include <Poco/File.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Thread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "access_log.h"
#include "logging.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";
const std::string kSample = std::string(B24ES_SOURCE_DIR) + "/b24-event-store.properties.example";

// A properties file in `dir` with `lines`, and serve's arguments for it on port 0.
std::vector<std::string> serveWith(const test::TempDir& dir, const std::string& lines) {
  std::ofstream(dir.file("test.properties")) << lines;
  return {"serve",
          "--config",
          dir.file("test.properties"),
          "--db",
          dir.file("events.db"),
          "--listen",
          "127.0.0.1:0",
          "--query-listen",
          "127.0.0.1:0"};
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Waits (without a time limit of its own: ctest's bounds the test) until `path` holds `needle`.
std::string waitForText(const std::string& path, const std::string& needle) {
  for (;;) {
    std::string text = Poco::File(path).exists() ? test::readFile(path) : std::string();
    if (text.find(needle) != std::string::npos) return text;
    Poco::Thread::sleep(20);
  }
}

// The json lines of `text` whose `key` is `value`.
std::vector<Poco::JSON::Object::Ptr> jsonLinesWhere(const std::string& text, const std::string& key,
                                                    const std::string& value) {
  std::vector<Poco::JSON::Object::Ptr> out;
  for (const std::string& line : lines(text)) {
    Poco::JSON::Object::Ptr object =
        Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>();
    if (object->has(key) && object->getValue<std::string>(key) == value) out.push_back(object);
  }
  return out;
}

}  // namespace

// Issue 14: the sample said ingest.threads = 256, which serve refuses since the key counts
// event loops.
BOOST_AUTO_TEST_CASE(the_shipped_sample_configuration_starts_serve_as_it_is) {
  test::TempDir dir;
  test::ChildProcess child({"serve", "--config", kSample, "--db", dir.file("events.db"), "--listen",
                            "127.0.0.1:0", "--query-listen", "127.0.0.1:0"});
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  BOOST_TEST(test::postForm(ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status == 200);
  child.signal(SIGTERM);
  BOOST_TEST(child.wait() == 0);
  BOOST_TEST(child.readAllStderr().find("error") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(each_command_help_lists_that_commands_options_and_only_those) {
  const std::vector<std::string> every = {
      "--config",    "--db",    "--listen",  "--query-listen", "--status", "--expiring-within",
      "--member-id", "--force", "--dry-run", "--user-id",      "--refresh"};
  const std::map<std::string, std::vector<std::string>> own = {
      {"serve", {"--config", "--db", "--listen", "--query-listen"}},
      {"migrate", {"--config", "--db", "--status"}},
      {"refresh-tokens",
       {"--config", "--db", "--expiring-within", "--member-id", "--force", "--dry-run"}},
      {"token", {"--config", "--db", "--user-id", "--refresh"}},
  };
  for (const auto& [command, options] : own) {
    std::string out, err;
    BOOST_REQUIRE_EQUAL(test::runBinary({command, "--help"}, out, err), 0);
    BOOST_TEST(out.find(command) != std::string::npos, command);
    for (const std::string& option : every) {
      // "--refresh" is a prefix of nothing else listed; match it as a whole word.
      const bool listed = out.find(option + " ") != std::string::npos ||
                          out.find(option + "=") != std::string::npos ||
                          out.find(option + "\n") != std::string::npos;
      const bool expected = std::find(options.begin(), options.end(), option) != options.end();
      BOOST_TEST(listed == expected, command << " --help and " << option << ":\n" << out);
    }
  }
  std::string out, err;
  BOOST_REQUIRE_EQUAL(test::runBinary({"--help"}, out, err), 0);
  for (const auto& entry : own) BOOST_TEST(out.find(entry.first) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(poco_logging_keys_are_refused_at_startup_not_ignored) {
  test::TempDir dir;
  std::string out, err;
  std::vector<std::string> args = serveWith(
      dir, "logging.loggers.root.channel = c\nlogging.channels.c.class = ConsoleChannel\n");
  BOOST_TEST(test::runBinary(args, out, err) == 2);
  BOOST_TEST(err.find("logging.*") != std::string::npos, err);
  BOOST_TEST(!Poco::File(dir.file("events.db")).exists());
}

BOOST_AUTO_TEST_CASE(bad_log_keys_are_configuration_errors) {
  for (const std::string line :
       {"log.level = chatty\n", "log.format = xml\n", "log.access = maybe\n",
        "ingest.trusted_proxies = proxy.example\n"}) {
    test::TempDir dir;
    std::string out, err;
    BOOST_TEST(test::runBinary(serveWith(dir, line), out, err) == 2, line);
  }
}

BOOST_AUTO_TEST_CASE(sighup_reopens_the_log_file_and_neither_sighup_nor_sigusr1_stops_serve) {
  test::TempDir dir;
  const std::string log = dir.file("b24es.log");
  test::ChildProcess child(serveWith(dir, "log.file = " + log + "\nlog.access = true\n"));
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  BOOST_REQUIRE_EQUAL(test::httpGet(query, "/healthz?first").status, 200);
  waitForText(log, "/healthz");
  // What logrotate does: move the file away, then SIGHUP.
  Poco::File(log).renameTo(dir.file("b24es.log.1"));
  child.signal(SIGHUP);
  waitForText(log, "SIGHUP");
  BOOST_REQUIRE_EQUAL(test::httpGet(query, "/api/v1/stats").status, 200);
  child.signal(SIGUSR1);
  waitForText(log, "SIGUSR1");
  BOOST_TEST(test::postForm(ingest, kPath, test::sample("01-ONAPPINSTALL.form")).status == 200);
  std::string after = waitForText(log, "ONAPPINSTALL");
  BOOST_TEST(after.find("/api/v1/stats") != std::string::npos);
  BOOST_TEST(after.find("/healthz") == std::string::npos);
  BOOST_TEST(test::readFile(dir.file("b24es.log.1")).find("/healthz") != std::string::npos);
  child.signal(SIGTERM);
  BOOST_TEST(child.wait() == 0);
  BOOST_TEST(child.readAllStderr().empty());  // everything went to the file
}

BOOST_AUTO_TEST_CASE(json_access_log_names_the_forwarded_client_the_claims_and_the_stored_id) {
  test::TempDir dir;
  const std::string log = dir.file("b24es.log");
  test::ChildProcess child(
      serveWith(dir, "log.file = " + log + "\nlog.format = json\nlog.access = true\n"));
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  // The test connects from 127.0.0.1, a trusted proxy by default.
  auto stored = test::httpRequest(ingest, "POST", kPath, test::sample("01-ONAPPINSTALL.form"),
                                  "application/x-www-form-urlencoded",
                                  {{"X-Forwarded-For", "198.51.100.7, 203.0.113.9"}});
  BOOST_REQUIRE_EQUAL(stored.status, 200);
  auto rejected =
      test::httpRequest(ingest, "POST", kPath, "event=ONCRMDEALADD",
                        "application/x-www-form-urlencoded", {{"X-Real-IP", "192.0.2.44"}});
  BOOST_REQUIRE_EQUAL(rejected.status, 400);
  BOOST_REQUIRE_EQUAL(test::httpRequest(query, "DELETE", "/api/v1/events").status, 405);
  std::string text = waitForText(log, "DELETE");
  child.signal(SIGTERM);
  BOOST_REQUIRE_EQUAL(child.wait(), 0);
  text = test::readFile(log);

  // Every line is one JSON object with time, level, source and message.
  for (const std::string& line : lines(text)) {
    Poco::JSON::Object::Ptr o = Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>();
    for (const char* key : {"time", "level", "source", "message"}) {
      BOOST_TEST(o->has(key), key << " in " << line);
    }
  }
  auto access = jsonLinesWhere(text, "source", "b24es.access");
  BOOST_REQUIRE_EQUAL(access.size(), 3u);
  const Poco::JSON::Object::Ptr& first = access[0];
  BOOST_TEST(first->getValue<std::string>("listener") == "ingest");
  BOOST_TEST(first->getValue<std::string>("client") == "203.0.113.9");
  BOOST_TEST(first->getValue<std::string>("method") == "POST");
  BOOST_TEST(first->getValue<std::string>("path") == kPath);
  BOOST_TEST(first->get("status").isInteger());
  BOOST_TEST(first->getValue<int>("status") == 200);
  BOOST_TEST(first->getValue<int>("bytes") == static_cast<int>(stored.body.size()));
  BOOST_TEST(first->has("duration_ms"));
  BOOST_TEST(first->getValue<std::string>("member_id") == "7c1e5a93d2b84f06a9e3c5d71b2f8e40");
  BOOST_TEST(first->getValue<std::string>("event") == "ONAPPINSTALL");
  BOOST_TEST(first->getValue<int>("id") == 1);
  BOOST_TEST(access[1]->getValue<std::string>("client") == "192.0.2.44");
  BOOST_TEST(access[1]->getValue<int>("status") == 400);
  BOOST_TEST(!access[1]->has("id"));
  BOOST_TEST(access[2]->getValue<std::string>("listener") == "query");
  BOOST_TEST(access[2]->getValue<int>("status") == 405);
  // The rejection's own line names the client too.
  auto warnings = jsonLinesWhere(text, "level", "warning");
  BOOST_REQUIRE(!warnings.empty());
  for (const auto& w : warnings) BOOST_TEST(w->has("client"), w->getValue<std::string>("message"));
  BOOST_TEST(jsonLinesWhere(text, "client", "192.0.2.44").size() == 2u);
}

BOOST_AUTO_TEST_CASE(an_empty_trusted_proxies_list_trusts_no_forwarded_header) {
  test::TempDir dir;
  test::ChildProcess child(serveWith(dir, "ingest.trusted_proxies =\nlog.access = true\n"));
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  BOOST_REQUIRE_EQUAL(
      test::httpRequest(ingest, "POST", kPath, "x=1", "application/x-www-form-urlencoded",
                        {{"X-Forwarded-For", "198.51.100.7"}, {"X-Real-IP", "192.0.2.1"}})
          .status,
      400);
  child.signal(SIGTERM);
  BOOST_REQUIRE_EQUAL(child.wait(), 0);
  std::string err = child.readAllStderr();
  BOOST_TEST(err.find("client=127.0.0.1") != std::string::npos, err);
  BOOST_TEST(err.find("198.51.100.7") == std::string::npos);
  BOOST_TEST(err.find("192.0.2.1") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(without_log_access_there_is_no_access_line) {
  test::TempDir dir;
  test::ChildProcess child(serveWith(dir, "log.level = information\n"));
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  BOOST_REQUIRE_EQUAL(test::httpGet(query, "/healthz").status, 200);
  child.signal(SIGTERM);
  BOOST_REQUIRE_EQUAL(child.wait(), 0);
  BOOST_TEST(child.readAllStderr().find("b24es.access") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(log_level_warning_leaves_out_information_lines) {
  test::TempDir dir;
  test::ChildProcess child(serveWith(dir, "log.level = warning\nlog.access = true\n"));
  std::string ingest, query;
  BOOST_REQUIRE(child.readListeningLine(ingest, query));
  BOOST_REQUIRE_EQUAL(test::httpGet(query, "/healthz").status, 200);
  BOOST_REQUIRE_EQUAL(test::postForm(ingest, kPath, "x=1").status, 400);
  child.signal(SIGTERM);
  BOOST_REQUIRE_EQUAL(child.wait(), 0);
  const std::string err = child.readAllStderr();
  BOOST_TEST(err.find("serving") == std::string::npos, err);
  BOOST_TEST(err.find("Warning b24es.ingest: 400") != std::string::npos, err);
  // log.access has its own level: on, whatever log.level says.
  BOOST_TEST(err.find("b24es.access") != std::string::npos, err);
}

// Type=notify: READY=1 once both listeners serve, STOPPING=1 when SIGTERM begins the stop.
BOOST_AUTO_TEST_CASE(serve_tells_systemd_when_it_is_ready_and_when_it_stops) {
  test::TempDir dir;
  const std::string socketPath = dir.file("notify");
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socketPath.c_str());
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  auto receive = [fd] {
    char buffer[512];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  };
  {
    test::ChildProcess child(test::serveArgs(dir), {{"NOTIFY_SOCKET", socketPath}});
    std::string ingest, query;
    BOOST_REQUIRE(child.readListeningLine(ingest, query));
    BOOST_TEST(receive().find("READY=1") != std::string::npos);
    BOOST_TEST(test::httpGet(query, "/healthz").status == 200);
    child.signal(SIGTERM);
    BOOST_TEST(receive().find("STOPPING=1") != std::string::npos);
    BOOST_TEST(child.wait() == 0);
  }
  ::close(fd);
}

BOOST_AUTO_TEST_CASE(log_values_from_requests_cannot_forge_lines) {
  BOOST_TEST(logValue("ok") == "ok");
  BOOST_TEST(logValue("a\nb\r\tc\x01\x7f") == "a\\nb\\r\\tc\\x01\\x7f");
  std::string longValue(300, 'x');
  BOOST_TEST(logValue(longValue) == std::string(256, 'x') + "...");
}

BOOST_AUTO_TEST_CASE(the_client_address_comes_from_headers_only_through_a_trusted_peer) {
  const std::vector<Poco::Net::IPAddress> trusted = parseTrustedProxies({"127.0.0.1", "::1"});
  const Poco::Net::SocketAddress proxy("127.0.0.1", 5000);
  const Poco::Net::SocketAddress stranger("192.0.2.9", 5000);
  Poco::Net::HTTPRequest forwarded;
  forwarded.set("X-Forwarded-For", "10.0.0.1, 198.51.100.7");
  forwarded.set("X-Real-IP", "192.0.2.1");
  BOOST_TEST(resolveClient(proxy, &forwarded, trusted) == "198.51.100.7");
  BOOST_TEST(resolveClient(stranger, &forwarded, trusted) == "192.0.2.9");
  BOOST_TEST(resolveClient(proxy, &forwarded, {}) == "127.0.0.1");
  BOOST_TEST(resolveClient(proxy, nullptr, trusted) == "127.0.0.1");
  Poco::Net::HTTPRequest realIp;
  realIp.set("X-Real-IP", "192.0.2.1");
  BOOST_TEST(resolveClient(proxy, &realIp, trusted) == "192.0.2.1");
  Poco::Net::HTTPRequest garbage;
  garbage.set("X-Forwarded-For", "not an address\n");
  BOOST_TEST(resolveClient(proxy, &garbage, trusted) == "127.0.0.1");
  BOOST_CHECK_THROW(parseTrustedProxies({"proxy.example"}), Poco::SyntaxException);
}

BOOST_AUTO_TEST_CASE(json_lines_carry_the_messages_fields_numbers_as_numbers) {
  // Keeps the messages a logger sends, to format them as the json format does.
  class Capture final : public Poco::Channel {
   public:
    void log(const Poco::Message& message) override { messages.push_back(message); }
    std::vector<Poco::Message> messages;
  };
  Poco::AutoPtr<Capture> capture(new Capture);
  Poco::Logger& logger = Poco::Logger::get("test.json");
  logger.setChannel(capture);
  logger.setLevel(Poco::Message::PRIO_INFORMATION);
  logWithFields(logger, Poco::Message::PRIO_WARNING, "refused",
                {{"client", "a\"b"}, {"status", "401", true}, {"ratio", "0.25", true}});
  BOOST_REQUIRE_EQUAL(capture->messages.size(), 1u);
  BOOST_TEST(capture->messages[0].getText() == "refused client=a\"b status=401 ratio=0.25");
  Poco::JSON::Object::Ptr o = Poco::JSON::Parser()
                                  .parse(jsonLogLine(capture->messages[0]))
                                  .extract<Poco::JSON::Object::Ptr>();
  BOOST_TEST(o->getValue<std::string>("level") == "warning");
  BOOST_TEST(o->getValue<std::string>("source") == "test.json");
  BOOST_TEST(o->getValue<std::string>("message") == "refused");
  BOOST_TEST(o->getValue<std::string>("client") == "a\"b");
  BOOST_TEST(o->get("status").isInteger());
  BOOST_TEST(o->getValue<int>("status") == 401);
  BOOST_TEST(o->getValue<double>("ratio") == 0.25);
  BOOST_TEST(o->has("time"));
}
