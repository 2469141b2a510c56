// Which storage backend an integration suite runs against (issue 16: the ingest, query, refresh,
// offline, stream and retention suites run on both). ctest registers such a suite twice (see
// b24es_test_both in tests/CMakeLists.txt): NAME on SQLite, NAME_pg with
// B24ES_TEST_BACKEND=postgresql on a database of the suite's throwaway PostgreSQL
// (scripts/lib/pg.sh). testSettings(), backendEnv(), openTestStorage() and
// queryScalar(Settings, ...) follow the choice, so a case is written once.
//
// Include after <boost/test/unit_test.hpp>: it adds a global fixture that ends a _pg run with
// exit code 77 (ctest's SKIP_RETURN_CODE for those tests) when no server is configured outside
// scripts/test, and fails it when scripts/test required one (pgServerUrl()).
#pragma once

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <iostream>

#include "pg_test_support.h"
#include "test_support.h"

namespace b24es::test {

// For cases about one backend's own mechanics (a SQLite file removed under the service, its
// PRAGMAs): BOOST_AUTO_TEST_CASE(name, *test::onlyOn(Backend::sqlite)). The case is reported
// as skipped, with the reason, on the other backend.
struct onlyOn {
  explicit onlyOn(Backend backend) : backend_(backend) {}
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result result(testBackend() == backend_);
    if (!result) {
      result.message() << "this case is about the " << backendName(backend_) << " backend only";
    }
    return result;
  }
  // Boost's unary operator* is a member of decorator::base, which this is not; so *onlyOn(...)
  // has its own, which stacks the precondition as Boost's would.
  boost::unit_test::decorator::collector_t& operator*() const {
    return *boost::unit_test::decorator::precondition(predicate());
  }
  operator boost::unit_test::decorator::precondition() const {
    return boost::unit_test::decorator::precondition(predicate());
  }

 private:
  // Through a lambda: precondition(*this) would convert *this with the operator above again
  // (GCC: infinite recursion).
  boost::unit_test::decorator::precondition::predicate_t predicate() const {
    const onlyOn self = *this;
    return [self](boost::unit_test::test_unit_id id) { return self(id); };
  }

  Backend backend_;
};

struct BackendFixture {
  BackendFixture() {
    if (testBackend() != Backend::postgresql) return;
    if (!pgServerUrl()) {  // throws when scripts/test required a server
      std::cerr << "B24ES_TEST_BACKEND=postgresql but no B24ES_TEST_PG_URL: skipped (scripts/test "
                   "starts a throwaway PostgreSQL)\n";
      std::exit(77);
    }
  }
};
BOOST_TEST_GLOBAL_FIXTURE(BackendFixture);

}  // namespace b24es::test
