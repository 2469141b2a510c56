// Unit tests of logValue() (server/log_value.h): request values in log lines (SPEC §10).
#define BOOST_TEST_MODULE log_value
#include <boost/test/unit_test.hpp>

#include "log_value.h"

using b24es::logValue;

// Issue 13: a member_id holding a newline and a timestamp forged a whole log line.
BOOST_AUTO_TEST_CASE(a_newline_cannot_start_a_forged_line) {
  const std::string forged = "\n2026-12-01T00:00:00.000Z Error b24es: FORGED LINE";
  const std::string shown = logValue("abc" + forged);
  BOOST_TEST(shown == "abc\\n2026-12-01T00:00:00.000Z Error b24es: FORGED LINE");
  BOOST_TEST(shown.find('\n') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_control_character_is_escaped) {
  BOOST_TEST(logValue("a\rb\tc") == "a\\rb\\tc");
  BOOST_TEST(logValue("\x1b[31mred") == "\\x1b[31mred");  // ESC: no terminal colours or moves
  BOOST_TEST(logValue(std::string("nul\0x", 5)) == "nul\\x00x");
  BOOST_TEST(logValue("del\x7f") == "del\\x7f");
  BOOST_TEST(logValue("c1\xc2\x9b") == "c1\\x9b");  // U+009B, the 8-bit CSI
  for (int c = 0; c < 0x20; ++c) {
    const std::string shown = logValue(std::string(1, static_cast<char>(c)));
    for (char s : shown) BOOST_TEST(static_cast<unsigned char>(s) >= 0x20);
  }
}

BOOST_AUTO_TEST_CASE(bytes_that_are_not_utf8_are_escaped_and_utf8_is_kept) {
  BOOST_TEST(logValue("\xff\xfe") == "\\xff\\xfe");
  BOOST_TEST(logValue("\xc0\xaf") == "\\xc0\\xaf");           // overlong '/'
  BOOST_TEST(logValue("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a surrogate
  BOOST_TEST(logValue("портал ü €") == "портал ü €");
}

BOOST_AUTO_TEST_CASE(values_are_cut_after_256_characters) {
  BOOST_TEST(logValue(std::string(256, 'a')) == std::string(256, 'a'));
  BOOST_TEST(logValue(std::string(10000, 'a')) == std::string(256, 'a') + "...");
  // Characters, not bytes: a cut never splits a UTF-8 sequence.
  std::string cyrillic;
  for (int i = 0; i < 300; ++i) cyrillic += "ж";
  std::string expected;
  for (int i = 0; i < 256; ++i) expected += "ж";
  BOOST_TEST(logValue(cyrillic) == expected + "...");
}

BOOST_AUTO_TEST_CASE(escaping_twice_changes_nothing) {
  const std::string once = logValue("a\nb\x1b", std::string::npos);
  BOOST_TEST(logValue(once, std::string::npos) == once);
}
