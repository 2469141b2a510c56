// The dashboard (SPEC §5.2) in a real headless Chromium, driven over WebDriver (Debian's
// chromium and chromium-driver, installed by scripts/test): the page loads with no console error
// and no request to another host, draws charts with data, names the test portal, and shows an
// event posted after it loaded in the live tail. With query.token set it asks for the token
// first. Saves a screenshot as dashboard.png in the test's working folder (the build folder).
#define BOOST_TEST_MODULE dashboard_browser_test
#include <Poco/Base64Decoder.h>
#include <Poco/File.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_support.h"

using namespace b24es::test;

namespace {

const char* kChromium = "/usr/bin/chromium";
const char* kChromedriver = "/usr/bin/chromedriver";

unsigned short freePort() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  unsigned short port = socket.address().port();
  socket.close();
  return port;
}

// A chromedriver child process and one browser session, spoken to as the W3C WebDriver protocol
// says (JSON over HTTP on loopback).
class Browser {
 public:
  explicit Browser(const TempDir& dir) : port_(freePort()) {
    BOOST_REQUIRE_MESSAGE(Poco::File(kChromedriver).exists() && Poco::File(kChromium).exists(),
                          "chromium and chromium-driver are needed (scripts/test installs them)");
    Poco::Process::Args args{"--port=" + std::to_string(port_), "--allowed-ips=127.0.0.1",
                             "--log-path=" + dir.file("chromedriver.log")};
    driver_.handle = std::make_unique<Poco::ProcessHandle>(
        Poco::Process::launch(kChromedriver, args, nullptr, nullptr, nullptr));
    waitUntilReady();
    Poco::JSON::Object::Ptr caps = parse(R"({"capabilities":{"alwaysMatch":{
        "browserName":"chrome",
        "goog:loggingPrefs":{"browser":"ALL"},
        "goog:chromeOptions":{"binary":"/usr/bin/chromium","args":[
          "--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage",
          "--no-first-run","--window-size=1400,1100"]}}}})");
    auto chromeArgs = caps->getObject("capabilities")
                          ->getObject("alwaysMatch")
                          ->getObject("goog:chromeOptions")
                          ->getArray("args");
    chromeArgs->add("--user-data-dir=" + dir.file("chromium-profile"));
    Poco::JSON::Object::Ptr answer = call("POST", "/session", caps);
    session_ = answer->getObject("value")->getValue<std::string>("sessionId");
  }

  ~Browser() {
    try {
      if (!session_.empty()) call("DELETE", "/session/" + session_, nullptr);
    } catch (...) {
    }
  }

  void open(const std::string& url) {
    Poco::JSON::Object::Ptr body = new Poco::JSON::Object;
    body->set("url", url);
    call("POST", sessionPath("/url"), body);
  }

  // Runs `script` (a function body) in the page and returns its value.
  Poco::Dynamic::Var run(const std::string& script) {
    Poco::JSON::Object::Ptr body = new Poco::JSON::Object;
    body->set("script", script);
    body->set("args", Poco::JSON::Array::Ptr(new Poco::JSON::Array));
    return call("POST", sessionPath("/execute/sync"), body)->get("value");
  }

  // Polls `script` until it returns true, at most `limit`. Returns whether it did.
  bool waitFor(const std::string& script, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    do {
      Poco::Dynamic::Var value = run(script);
      if (!value.isEmpty() && value.isBoolean() && value.extract<bool>()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

  // The browser console's entries since the last call, as "LEVEL message" lines.
  std::vector<std::string> consoleEntries(bool errorsOnly) {
    Poco::JSON::Object::Ptr body = new Poco::JSON::Object;
    body->set("type", "browser");
    Poco::JSON::Array::Ptr entries = call("POST", sessionPath("/se/log"), body)->getArray("value");
    std::vector<std::string> out;
    for (std::size_t i = 0; entries && i < entries->size(); ++i) {
      Poco::JSON::Object::Ptr entry = entries->getObject(i);
      std::string level = entry->optValue<std::string>("level", "");
      if (errorsOnly && level != "SEVERE") continue;
      out.push_back(level + " " + entry->optValue<std::string>("message", ""));
    }
    return out;
  }

  void screenshot(const std::string& path) {
    std::string base64 =
        call("GET", sessionPath("/screenshot"), nullptr)->getValue<std::string>("value");
    std::istringstream in(base64);
    Poco::Base64Decoder decoder(in);
    std::ofstream out(path, std::ios::binary);
    Poco::StreamCopier::copyStream(decoder, out);
  }

 private:
  std::string sessionPath(const std::string& tail) const { return "/session/" + session_ + tail; }

  static Poco::JSON::Object::Ptr parse(const std::string& text) {
    return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
  }

  Poco::JSON::Object::Ptr call(const std::string& method, const std::string& path,
                               const Poco::JSON::Object::Ptr& body) {
    Poco::Net::HTTPClientSession session("127.0.0.1", port_);
    session.setTimeout(Poco::Timespan(60, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    std::string text;
    if (body) {
      std::ostringstream json;
      body->stringify(json);
      text = json.str();
      request.setContentType("application/json");
    }
    request.setContentLength(static_cast<std::streamsize>(text.size()));
    session.sendRequest(request) << text;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    std::string answer;
    Poco::StreamCopier::copyToString(in, answer);
    BOOST_REQUIRE_MESSAGE(response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK,
                          "WebDriver " << method << " " << path << ": " << answer);
    return parse(answer);
  }

  void waitUntilReady() {
    for (int i = 0; i < 200; ++i) {
      try {
        Poco::Net::HTTPClientSession session("127.0.0.1", port_);
        // HTTP/1.1: chromedriver does not answer HTTP/1.0 requests.
        Poco::Net::HTTPRequest request("GET", "/status", Poco::Net::HTTPMessage::HTTP_1_1);
        session.sendRequest(request);
        Poco::Net::HTTPResponse response;
        session.receiveResponse(response).ignore(1 << 20);
        if (response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK) return;
      } catch (const Poco::Exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    BOOST_FAIL("chromedriver did not start");
  }

  // Ends chromedriver (and with it the browser) also when the constructor fails half-way.
  struct Driver {
    std::unique_ptr<Poco::ProcessHandle> handle;
    ~Driver() {
      if (!handle) return;
      Poco::Process::kill(*handle);
      handle->wait();
    }
  };

  unsigned short port_;
  Driver driver_;
  std::string session_;
};

struct Store {
  explicit Store(const TempDir& dir, const std::map<std::string, std::string>& env = {})
      : child(serveArgs(dir), env) {
    BOOST_REQUIRE(child.readListeningLine(ingest, query));
    for (const char* name : {"01-ONAPPINSTALL.form", "03-ONCRMDEALADD.form",
                             "09-ONCRMTIMELINECOMMENTADD.form", "12-ONCRMDYNAMICITEMADD.form"}) {
      BOOST_REQUIRE_EQUAL(postForm(ingest, "/bitrix24/events", sample(name)).status, 200);
    }
    // One rejection for the rejections table: an unknown portal.
    BOOST_REQUIRE_EQUAL(
        postForm(ingest, "/bitrix24/events",
                 "event=ONCRMDEALADD&auth[member_id]=nobody&auth[application_token]=x")
            .status,
        401);
  }
  ChildProcess child;
  std::string ingest, query;
};

// Every resource the page loaded, and the page itself, came from the store's own origin.
const char* kForeignRequests = R"(
  const origin = location.origin;
  return performance.getEntriesByType('resource').map(e => e.name)
      .filter(name => !name.startsWith(origin + '/'));)";

const char* kChartsHaveData = R"(
  if (typeof Chart === 'undefined') return false;
  const sum = id => { const c = Chart.getChart(id); if (!c) return 0;
    return c.data.datasets.reduce((n, d) => n + d.data.reduce((a, b) => a + b, 0), 0); };
  return sum('chart-minute') > 0 && sum('chart-day') > 0;)";

const char* kPortalShown =
    "return document.querySelector('#portals "
    "tbody').textContent.includes('acme-test.bitrix24.com');";

const char* kRejectionShown =
    "return document.querySelector('#rejections tbody').textContent.includes('nobody');";

const char* kStreamLive = "return document.getElementById('stream-state').textContent === 'live';";

void postAndSeeInTail(Browser& browser, const Store& store) {
  HttpResult posted = postForm(store.ingest, "/bitrix24/events", sample("06-ONCRMCONTACTADD.form"));
  BOOST_REQUIRE_EQUAL(posted.status, 200);
  const std::string id = std::to_string(posted.json()->getValue<std::int64_t>("id"));
  // SPEC §5.1: a committed event reaches a stream within 1 s; the page draws it at once.
  BOOST_CHECK_MESSAGE(
      browser.waitFor("return !!document.querySelector('#tail tbody tr[data-id=\"" + id + "\"]');",
                      std::chrono::milliseconds(2000)),
      "event " << id << " did not show in the live tail within 2 s");
}

void checkNoConsoleErrors(Browser& browser) {
  std::vector<std::string> errors = browser.consoleEntries(true);
  for (const std::string& e : errors) BOOST_ERROR("console: " << e);
}

}  // namespace

BOOST_AUTO_TEST_CASE(dashboard_shows_charts_portals_rejections_and_a_live_tail) {
  TempDir dir;
  Store store(dir);
  Browser browser(dir);
  browser.open(store.query + "/");
  BOOST_CHECK_MESSAGE(browser.waitFor(kPortalShown, std::chrono::seconds(10)),
                      "the portals table does not name the test portal");
  BOOST_CHECK_MESSAGE(browser.waitFor(kChartsHaveData, std::chrono::seconds(10)),
                      "the charts have no data");
  BOOST_CHECK_MESSAGE(browser.waitFor(kRejectionShown, std::chrono::seconds(10)),
                      "the rejections table does not show the rejected request");
  BOOST_REQUIRE_MESSAGE(browser.waitFor(kStreamLive, std::chrono::seconds(10)),
                        "the live tail did not connect to the stream");
  postAndSeeInTail(browser, store);
  Poco::JSON::Array::Ptr foreign = browser.run(kForeignRequests).extract<Poco::JSON::Array::Ptr>();
  BOOST_CHECK_MESSAGE(foreign->size() == 0, "requests to another origin: " << foreign->size());
  checkNoConsoleErrors(browser);
  browser.screenshot("dashboard.png");
}

BOOST_AUTO_TEST_CASE(dashboard_asks_for_the_query_token_and_then_works) {
  TempDir dir;
  Store store(dir, {{"B24ES_QUERY_TOKEN", "dashboard-test-token"}});
  Browser browser(dir);
  browser.open(store.query + "/");
  BOOST_REQUIRE_MESSAGE(browser.waitFor("return !document.getElementById('token-form').hidden;",
                                        std::chrono::seconds(10)),
                        "the page did not ask for the token");
  // Unauthorized API calls are expected before the token is given; forget them.
  browser.consoleEntries(false);
  browser.run(R"(
    document.getElementById('token-input').value = 'dashboard-test-token';
    document.getElementById('token-form').requestSubmit();
    return true;)");
  BOOST_CHECK_MESSAGE(browser.waitFor(kPortalShown, std::chrono::seconds(10)),
                      "with the token the portals table does not name the test portal");
  BOOST_REQUIRE_MESSAGE(browser.waitFor(kStreamLive, std::chrono::seconds(10)),
                        "with the token the live tail did not connect");
  postAndSeeInTail(browser, store);
  // The page holds no secret: the token is nowhere in its HTML.
  HttpResult page = httpGet(store.query, "/");
  BOOST_CHECK_EQUAL(page.status, 200);
  BOOST_CHECK(page.body.find("dashboard-test-token") == std::string::npos);
  checkNoConsoleErrors(browser);
  browser.screenshot("dashboard-token.png");
}
