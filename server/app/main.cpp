// Entry point: wires the command line to App and maps POCO's option errors to exit code 2.
#include <Poco/Util/Application.h>

#include "app.h"

int main(int argc, char** argv) {
  b24es::App app;
  int rc = app.run(argc, argv);
  // ServerApplication::run reports an unknown or malformed option as EXIT_CONFIG or EXIT_USAGE.
  if (rc == Poco::Util::Application::EXIT_CONFIG || rc == Poco::Util::Application::EXIT_USAGE) {
    return b24es::kExitUsage;
  }
  return rc;
}
