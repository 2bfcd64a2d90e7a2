// ascii_iequals: HTTP's case-insensitive comparison of field names and tokens, ASCII only.

#include "http1/ascii.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lameduck::detail {
namespace {

TEST(AsciiIequals, IgnoresTheCaseOfLetters) {
  EXPECT_TRUE(ascii_iequals("Content-Length", "content-length"));
  EXPECT_TRUE(ascii_iequals("HOST", "host"));
  EXPECT_TRUE(ascii_iequals("", ""));
}

TEST(AsciiIequals, DiffersInSizeOrAnyOtherByte) {
  EXPECT_FALSE(ascii_iequals("host", "hosts"));
  EXPECT_FALSE(ascii_iequals("host", "hosT "));
  EXPECT_FALSE(ascii_iequals("Expect", "Except"));
}

TEST(AsciiIequals, FoldsOnlyLettersNotTheirBitNeighbours) {
  // These pairs differ only in the case bit (0x20) but are not letters, so they differ.
  EXPECT_FALSE(ascii_iequals("@", "`"));
  EXPECT_FALSE(ascii_iequals("[", "{"));
  EXPECT_FALSE(ascii_iequals("^", "~"));
  EXPECT_FALSE(ascii_iequals("\r", "-"));
  EXPECT_FALSE(ascii_iequals("1", "\x11"));
  // Every letter in both cases, and no byte outside them.
  for (int c = 0; c < 256; ++c) {
    for (int d = 0; d < 256; ++d) {
      const bool same_letter =
          c == d || ((c | 0x20) == (d | 0x20) && (c | 0x20) >= 'a' && (c | 0x20) <= 'z');
      std::string a(1, static_cast<char>(c)), b(1, static_cast<char>(d));
      ASSERT_EQ(ascii_iequals(a, b), same_letter) << c << " " << d;
    }
  }
}

TEST(AsciiIequals, LeavesNonAsciiBytesAlone) {
  EXPECT_FALSE(ascii_iequals("\xc9", "\xe9"));  // É and é in Latin-1: not folded
  EXPECT_TRUE(ascii_iequals("\xc9t\xc9", "\xc9T\xc9"));
}

}  // namespace
}  // namespace lameduck::detail
