#include "logging.h"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Exception.h>
#include <Poco/FileChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/JSON/Object.h>
#include <Poco/NumberParser.h>
#include <Poco/PatternFormatter.h>
#include <Poco/StringTokenizer.h>

#include <iostream>
#include <mutex>
#include <sstream>

namespace b24es {
namespace {

// Message parameters that carry the fields of logWithFields to the json formatter: POCO 1.11's
// Message cannot list its parameters, so their names travel in one more parameter.
const std::string kFieldNames = "b24es.fields";
const std::string kBareText = "b24es.text";

const char* levelName(Poco::Message::Priority p) {
  switch (p) {
    case Poco::Message::PRIO_FATAL:
      return "fatal";
    case Poco::Message::PRIO_CRITICAL:
      return "critical";
    case Poco::Message::PRIO_ERROR:
      return "error";
    case Poco::Message::PRIO_WARNING:
      return "warning";
    case Poco::Message::PRIO_NOTICE:
      return "notice";
    case Poco::Message::PRIO_INFORMATION:
      return "information";
    case Poco::Message::PRIO_DEBUG:
      return "debug";
    case Poco::Message::PRIO_TRACE:
      return "trace";
  }
  return "information";
}

// One JSON object per line (SPEC §10). Written by hand because POCO has no JSON formatter.
class JsonFormatter final : public Poco::Formatter {
 public:
  void format(const Poco::Message& message, std::string& text) override {
    text = jsonLogLine(message);
  }
};

std::mutex fileMutex;                      // guards logFile
Poco::AutoPtr<Poco::FileChannel> logFile;  // the log.file channel, null when logging to stderr

}  // namespace

std::string jsonLogLine(const Poco::Message& message) {
  Poco::JSON::Object line(Poco::JSON_PRESERVE_KEY_ORDER);
  line.set("time", Poco::DateTimeFormatter::format(message.getTime(), "%Y-%m-%dT%H:%M:%S.%iZ"));
  line.set("level", std::string(levelName(message.getPriority())));
  line.set("source", message.getSource());
  line.set("message", message.has(kBareText) ? message.get(kBareText) : message.getText());
  if (message.has(kFieldNames)) {
    Poco::StringTokenizer names(message.get(kFieldNames), ",",
                                Poco::StringTokenizer::TOK_IGNORE_EMPTY);
    for (std::string name : names) {
      // A trailing '#' marks a number (LogField::number).
      const bool number = !name.empty() && name.back() == '#';
      if (number) name.pop_back();
      if (!message.has(name)) continue;
      const std::string& value = message.get(name);
      Poco::Int64 integer = 0;
      double real = 0;
      if (number && Poco::NumberParser::tryParse64(value, integer)) {
        line.set(name, Poco::Dynamic::Var(integer));
      } else if (number && Poco::NumberParser::tryParseFloat(value, real)) {
        line.set(name, Poco::Dynamic::Var(real));
      } else {
        line.set(name, value);
      }
    }
  }
  std::ostringstream out;
  line.stringify(out);
  return out.str();
}

void configureLogging(const LogSettings& settings) {
  Poco::AutoPtr<Poco::Formatter> formatter;
  if (settings.format == "json") {
    formatter = new JsonFormatter;
  } else {
    formatter = new Poco::PatternFormatter("%Y-%m-%dT%H:%M:%S.%iZ %p %s: %t");
  }
  Poco::AutoPtr<Poco::Channel> sink;
  if (settings.file.empty()) {
    // stderr, so stdout stays for what scripts read (the listening line, tokens).
    sink = new Poco::ConsoleChannel(std::cerr);
  } else {
    // No rotation here: logrotate moves the file and sends SIGHUP (reopenLogFile).
    Poco::AutoPtr<Poco::FileChannel> file(new Poco::FileChannel(settings.file));
    file->open();  // fails now, at startup, rather than at the first line
    std::lock_guard<std::mutex> lock(fileMutex);
    logFile = file;
    sink = file;
  }
  Poco::AutoPtr<Poco::FormattingChannel> channel(new Poco::FormattingChannel(formatter, sink));
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", Poco::Logger::parseLevel(settings.level));
  // After the root, so that the access logger keeps its own level.
  Poco::Logger::get("b24es.access").setLevel(settings.access ? Poco::Message::PRIO_INFORMATION : 0);
}

bool reopenLogFile() {
  std::lock_guard<std::mutex> lock(fileMutex);
  if (!logFile) return false;
  // FileChannel::log() opens the file again, at the path, on the next line.
  logFile->close();
  logFile->open();
  return true;
}

void logWithFields(Poco::Logger& logger, Poco::Message::Priority priority, const std::string& text,
                   const LogFields& fields) {
  if (!logger.is(priority)) return;
  std::string full = text;
  std::string names;
  for (const LogField& f : fields) {
    full += " " + f.name + "=" + f.value;
    if (!names.empty()) names += ",";
    names += f.number ? f.name + "#" : f.name;
  }
  Poco::Message message(logger.name(), full, priority);
  message.set(kBareText, text);
  message.set(kFieldNames, names);
  for (const LogField& f : fields) message.set(f.name, f.value);
  logger.log(message);
}

}  // namespace b24es
