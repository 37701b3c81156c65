// The `shmbus` command line as a user runs it: separate processes, stdin/stdout, exit codes.
#include "system_fixture.hpp"

namespace shmbus::systest {
namespace {

class CliSystem_test : public SystemTest {};

TEST_F(CliSystem_test, RecvPrintsEachLineSentFromStdin) {
  auto recv = Child::spawn({SHMBUS_CLI_PATH, "--dir", dir_, "recv", "topic://x", "--count", "3", "--timeout", "5000"},
                           {false, true, true});
  ASSERT_TRUE(wait_topic("topic://x", 1, kStartDeadline)) << "recv subscribed";
  const auto s = run_cli({"send", "topic://x", "-"}, "first\nsecond line\nthird\n");
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.err.find("sent 3 message(s)"), std::string::npos) << s.err;
  std::string out, err;
  ASSERT_TRUE(recv.drain(Millis(10000), out, err)) << "recv should stop after 3 messages";
  const auto st = recv.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(*st) << "; stderr: " << err;
  EXPECT_EQ(out, "first\nsecond line\nthird\n");
}

TEST_F(CliSystem_test, RecvTimesOutWithExitCodeOne) {
  const auto r = run_cli({"recv", "topic://quiet", "--count", "1", "--timeout", "50"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CliSystem_test, StatJsonNamesDestinationsAndCounters) {
  auto session = observer().create_session();
  auto c = session.create_consumer(Topic("x"), {WaitStrategy::Park, 0}, {64, 64});
  auto p = session.create_producer(Topic("x"), {}, {64, 64});
  ASSERT_EQ(p.send(std::string_view("hello")), Status::Ok);
  const auto r = run_cli({"stat", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_EQ(r.out.substr(r.out.size() - 2), "}\n");
  for (const char* key : {"destinations", "name", "published", "producers", "consumers", "subscribers", "position",
                          "lost"})
    EXPECT_NE(r.out.find(std::string("\"") + key + "\":"), std::string::npos) << "no key " << key << " in " << r.out;
  EXPECT_NE(r.out.find("\"name\":\"topic://x\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"published\":1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"consumers\":1"), std::string::npos) << r.out;
}

TEST_F(CliSystem_test, CommandsWithoutDaemonExitWithNoDaemonCode) {
  std::vector<std::string> argv{SHMBUS_CLI_PATH, "--dir", root_ + "/nobody", "stat"};
  auto c = Child::spawn(argv, {false, true, true});
  std::string out, err;
  ASSERT_TRUE(c.drain(Millis(10000), out, err));
  const auto st = c.wait_exit(Millis(5000));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 3) << describe_status(*st) << "; stderr: " << err;
  EXPECT_NE(err.find("nobody"), std::string::npos) << "names the path it tried: " << err;
}

}  // namespace
}  // namespace shmbus::systest
