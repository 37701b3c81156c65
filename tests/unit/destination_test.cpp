// Destination URI parsing: topic://NAME and queue://NAME, NAME = 1..64 of [A-Za-z0-9._-].
#include "shmbus/shmbus.hpp"

#include <gtest/gtest.h>

#include <string>

namespace shmbus {
namespace {

// Expects Destination::parse(uri) to throw BadDestination with a message naming the input.
void expect_bad(const std::string& uri) {
  try {
    const auto d = Destination::parse(uri);
    ADD_FAILURE() << "'" << uri << "' was accepted as name '" << d.name() << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadDestination) << uri;
    EXPECT_NE(std::string(e.what()).find("'" + uri + "'"), std::string::npos)
        << "the message must quote the input; got: " << e.what();
  }
}

TEST(Destination_test, ParsesTopicUri) {
  const auto sut = Destination::parse("topic://orders");
  EXPECT_EQ(sut.kind(), Destination::Kind::Topic);
  EXPECT_EQ(sut.name(), "orders");
  EXPECT_EQ(sut.uri(), "topic://orders");
}

TEST(Destination_test, ParsesQueueUriAsQueueKind) {
  const auto sut = Destination::parse("queue://jobs");
  EXPECT_EQ(sut.kind(), Destination::Kind::Queue);
  EXPECT_EQ(sut.name(), "jobs");
  EXPECT_EQ(sut.uri(), "queue://jobs");
}

TEST(Destination_test, AcceptsEveryAllowedCharacterAndBothLengthLimits) {
  const std::string all = "Az09._-";
  EXPECT_EQ(Destination::parse("topic://" + all).name(), all);
  EXPECT_EQ(Destination::parse("topic://x").name(), "x");
  const std::string max(64, 'n');
  EXPECT_EQ(Destination::parse("topic://" + max).name(), max);
}

TEST(Destination_test, RejectsEmptyName) { expect_bad("topic://"); }

TEST(Destination_test, RejectsSixtyFiveCharacterName) { expect_bad("topic://" + std::string(65, 'a')); }

TEST(Destination_test, RejectsBadCharacters) {
  for (const char* uri : {"topic://a b", "topic://a/b", "topic://a:b", "topic://caf\xc3\xa9", "topic://a*",
                          "topic://..\x01", "topic://a://b"})
    expect_bad(uri);
}

TEST(Destination_test, RejectsMissingScheme) {
  expect_bad("orders");
  expect_bad("topic:/orders");
  expect_bad("");
}

TEST(Destination_test, RejectsUnknownScheme) {
  expect_bad("http://orders");
  expect_bad("Topic://orders");
  expect_bad("://orders");
}

TEST(Destination_test, QueueNamesStopAtSixtyCharactersSoTheirDlqNameFits) {
  EXPECT_EQ(Destination::parse("queue://" + std::string(60, 'q')).name().size(), 60U);
  expect_bad("queue://" + std::string(61, 'q'));
  EXPECT_EQ(Queue(std::string(60, 'q')).uri(), "queue://" + std::string(60, 'q'));
  EXPECT_THROW(Queue(std::string(61, 'q')), Error);
}

TEST(Destination_test, TopicConstructorValidatesTheName) {
  EXPECT_EQ(Topic("prices").uri(), "topic://prices");
  try {
    Topic sut("bad name");
    FAIL() << "Topic accepted a name with a space";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::BadDestination);
    EXPECT_NE(std::string(e.what()).find("bad name"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shmbus
