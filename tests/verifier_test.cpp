// Unit tests of the verification rules of SPEC §4 (server/verifier.cpp).
#define BOOST_TEST_MODULE verifier
#include <boost/test/unit_test.hpp>

#include "constant_time.h"
#include "verifier.h"

using namespace b24es;
using Action = Verdict::Action;

namespace {

const std::string kToken = "f4a8c2e61b9d7035e8c4a1f6d2b97e53";

IncomingEvent event(EventKind kind, const std::string& token) {
  IncomingEvent e;
  e.kind = kind;
  e.event = kind == EventKind::kInstall     ? "ONAPPINSTALL"
            : kind == EventKind::kUninstall ? "ONAPPUNINSTALL"
                                            : "ONCRMDEALADD";
  e.memberId = "m1";
  e.applicationToken = token;
  return e;
}

PortalRecord installedPortal(const std::string& token = kToken) {
  PortalRecord p;
  p.memberId = "m1";
  p.applicationToken = token;
  p.installedAt = 100;
  return p;
}

PortalRecord uninstalledPortal() {
  PortalRecord p;
  p.memberId = "m1";
  p.installedAt = 100;
  p.uninstalledAt = 200;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(constant_time_equals_compares_content_and_length) {
  BOOST_TEST(constantTimeEquals("abc", "abc"));
  BOOST_TEST(!constantTimeEquals("abc", "abd"));
  BOOST_TEST(!constantTimeEquals("abc", "abcd"));
  BOOST_TEST(constantTimeEquals("", ""));
}

BOOST_AUTO_TEST_CASE(install_of_an_unknown_portal_registers_it) {
  BOOST_TEST((verifyEvent(event(EventKind::kInstall, kToken), std::nullopt, {}).action ==
              Action::kInstall));
}

BOOST_AUTO_TEST_CASE(repeated_install_with_the_same_token_refreshes_the_portal) {
  BOOST_TEST((verifyEvent(event(EventKind::kInstall, kToken), installedPortal(), {}).action ==
              Action::kInstall));
}

BOOST_AUTO_TEST_CASE(install_with_another_token_cannot_take_over_an_installed_portal) {
  Verdict v = verifyEvent(event(EventKind::kInstall, "other"), installedPortal(), {});
  BOOST_TEST((v.action == Action::kReject));
  BOOST_TEST(v.reason.find("other") == std::string::npos);
  BOOST_TEST(v.reason.find(kToken) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(install_after_uninstall_is_accepted_with_a_new_token) {
  BOOST_TEST((verifyEvent(event(EventKind::kInstall, "new"), uninstalledPortal(), {}).action ==
              Action::kInstall));
}

BOOST_AUTO_TEST_CASE(install_over_a_portal_created_from_a_static_token_is_accepted) {
  PortalRecord p;
  p.memberId = "m1";  // no application token, never installed
  BOOST_TEST((verifyEvent(event(EventKind::kInstall, "new"), p, {}).action == Action::kInstall));
}

BOOST_AUTO_TEST_CASE(event_with_the_stored_token_is_stored) {
  BOOST_TEST((verifyEvent(event(EventKind::kOther, kToken), installedPortal(), {}).action ==
              Action::kStore));
}

BOOST_AUTO_TEST_CASE(event_with_a_wrong_token_is_rejected) {
  Verdict v = verifyEvent(event(EventKind::kOther, "wrong"), installedPortal(), {});
  BOOST_TEST((v.action == Action::kReject));
  BOOST_TEST(v.reason == "wrong application token");
}

BOOST_AUTO_TEST_CASE(event_of_an_unknown_portal_is_rejected) {
  Verdict v = verifyEvent(event(EventKind::kOther, kToken), std::nullopt, {});
  BOOST_TEST((v.action == Action::kReject));
  BOOST_TEST(v.reason == "unknown portal");
}

BOOST_AUTO_TEST_CASE(event_without_an_application_token_is_rejected) {
  BOOST_TEST((verifyEvent(event(EventKind::kOther, ""), installedPortal(), {"", "x"}).action ==
              Action::kReject));
}

BOOST_AUTO_TEST_CASE(static_token_verifies_an_unknown_portal_and_creates_it) {
  BOOST_TEST((verifyEvent(event(EventKind::kOther, "static2"), std::nullopt, {"static1", "static2"})
                  .action == Action::kStoreAndCreatePortal));
}

BOOST_AUTO_TEST_CASE(static_token_verifies_events_of_a_portal_it_created) {
  PortalRecord p;
  p.memberId = "m1";  // created by an earlier static-token event: no token, never installed
  BOOST_TEST(
      (verifyEvent(event(EventKind::kOther, "static1"), p, {"static1"}).action == Action::kStore));
  BOOST_TEST((verifyEvent(event(EventKind::kUninstall, "static1"), p, {"static1"}).action ==
              Action::kUninstall));
}

// Issue 13: a static token uninstalled an installed portal, and an attacker's ONAPPINSTALL
// then registered it with the attacker's token.
BOOST_AUTO_TEST_CASE(static_token_verifies_nothing_of_a_portal_installed_through_onappinstall) {
  for (EventKind kind : {EventKind::kOther, EventKind::kUninstall}) {
    Verdict v = verifyEvent(event(kind, "static1"), installedPortal(), {"static1"});
    BOOST_TEST((v.action == Action::kReject));
    BOOST_TEST(v.reason == "wrong application token");
    // Nor after an uninstall: the portal had a token of its own, only a new install revives it.
    v = verifyEvent(event(kind, "static1"), uninstalledPortal(), {"static1"});
    BOOST_TEST((v.action == Action::kReject));
  }
}

BOOST_AUTO_TEST_CASE(empty_static_token_entries_verify_nothing) {
  BOOST_TEST(
      (verifyEvent(event(EventKind::kOther, ""), std::nullopt, {""}).action == Action::kReject));
}

BOOST_AUTO_TEST_CASE(uninstall_with_the_stored_token_uninstalls) {
  BOOST_TEST((verifyEvent(event(EventKind::kUninstall, kToken), installedPortal(), {}).action ==
              Action::kUninstall));
}

BOOST_AUTO_TEST_CASE(uninstall_with_a_wrong_token_is_rejected) {
  BOOST_TEST((verifyEvent(event(EventKind::kUninstall, "x"), installedPortal(), {}).action ==
              Action::kReject));
}

BOOST_AUTO_TEST_CASE(old_token_of_an_uninstalled_portal_verifies_nothing) {
  PortalRecord p = uninstalledPortal();
  p.applicationToken = kToken;  // even if a row still held it
  Verdict v = verifyEvent(event(EventKind::kOther, kToken), p, {});
  BOOST_TEST((v.action == Action::kReject));
  BOOST_TEST(v.reason == "the portal is uninstalled");
}

// Issue 12 (SPEC §4 items 4-5): what app.info confirmed still needs the portal as it was then.
BOOST_AUTO_TEST_CASE(a_confirmed_rotation_rotates_only_while_the_stored_token_is_unchanged) {
  IncomingEvent e = event(EventKind::kOther, "new-token");
  e.event = "ONAPPUPDATE";
  e.confirmed = IncomingEvent::Confirmed::kRotation;
  e.replacedToken = kToken;
  BOOST_TEST((verifyEvent(e, installedPortal(), {}).action == Action::kRotate));
  BOOST_TEST((verifyEvent(e, installedPortal("rotated-meanwhile"), {}).action == Action::kReject));
  BOOST_TEST((verifyEvent(e, uninstalledPortal(), {}).action == Action::kReject));
  // Without the confirmation the new token is just a wrong one.
  e.confirmed = IncomingEvent::Confirmed::kNothing;
  BOOST_TEST((verifyEvent(e, installedPortal(), {}).action == Action::kReject));
}

BOOST_AUTO_TEST_CASE(a_confirmed_payment_is_stored_only_for_an_installed_portal) {
  IncomingEvent e = event(EventKind::kOther, "");
  e.event = "ONAPPPAYMENT";
  BOOST_TEST((verifyEvent(e, installedPortal(), {}).action == Action::kReject));
  e.confirmed = IncomingEvent::Confirmed::kPayment;
  BOOST_TEST((verifyEvent(e, installedPortal(), {}).action == Action::kStore));
  BOOST_TEST((verifyEvent(e, uninstalledPortal(), {}).action == Action::kReject));
  BOOST_TEST((verifyEvent(e, std::nullopt, {}).action == Action::kReject));
}
