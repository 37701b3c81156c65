// The conductor's side of durable subscriptions (docs/persistence.md, "Durable subscriptions"):
// a registry of named subscriptions per topic, each with the log position it has consumed up to,
// kept in DIR/data/topic.NAME/subscriptions. A topic with at least one subscription is logged by
// the persistence agent through a subscriber entry of the daemon's own (owner -3).
#include "conductor.hpp"
#include "log.hpp"
#include "shmbus/shmbus.hpp"

#include <algorithm>

#include <filesystem>
#include <fstream>

namespace shmbus::daemon {

using control::MsgType;

namespace {
constexpr std::int64_t kDaemonOwned = -3;  // subscriber_owner of the persistence agent's entry

void check_subscription_name(const std::string& n) {
  const bool ok = !n.empty() && n.size() <= 100 && std::all_of(n.begin(), n.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
  });
  if (!ok)
    throw Error(ErrorCode::InvalidArgument, "durable subscription name '" + n +
                                                "' must be 1 to 100 characters of A-Z a-z 0-9 . _ -");
}

std::map<std::string, std::uint64_t> load_subs(const std::string& dir) {
  std::map<std::string, std::uint64_t> out;
  std::ifstream in(dir + "/subscriptions");
  std::string name;
  std::uint64_t pos = 0;
  while (in >> name >> pos) out[name] = pos;
  return out;
}
}  // namespace

void Conductor::save_subs(const Dest& d) {
  const std::string tmp = d.log_dir + "/subscriptions.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& [name, s] : d.subs) out << name << " " << s.position << "\n";
    if (!out.flush()) {
      warn(d.uri + ": cannot write " + tmp + "; durable subscription positions are kept in memory only");
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, d.log_dir + "/subscriptions", ec);
  if (ec) warn(d.uri + ": cannot rename " + tmp + ": " + ec.message());
}

void Conductor::post_min_position(const Dest& d) {
  if (persist_ == nullptr || d.subs.empty()) return;
  std::uint64_t lo = ~0ULL;
  for (const auto& [name, s] : d.subs) lo = std::min(lo, s.position);
  persist_->post(TopicMinPosition{d.id, lo});
}

void Conductor::make_durable(Dest& d, const std::string& name) {
  if (d.daemon_entry >= 0 || persist_ == nullptr) return;
  d.log_dir = PersistenceAgent::topic_dir(cfg_.dir + "/data", name);
  std::error_code ec;
  std::filesystem::create_directories(d.log_dir, ec);
  if (ec) throw Error(ErrorCode::Internal, "cannot create " + d.log_dir + ": " + ec.message());
  std::uint32_t idx = 0;
  while (idx < d.subscriber_owner.size() && d.subscriber_owner[idx] != -1) ++idx;
  if (idx == d.subscriber_owner.size())
    throw Error(ErrorCode::LimitExceeded, d.uri + " has no subscriber entry left for its durable subscriptions' log");
  d.subscriber_owner[idx] = kDaemonOwned;
  d.daemon_entry = idx;
  auto* se = d.ring.subscriber(idx);
  // Acquire: as for any subscriber, it starts at a tail at least as new as any claim made before.
  const auto start = d.ring.header().tail.load(std::memory_order_acquire);
  se->client_index = ~0U;  // no client: never released by a client's death
  se->consumer_id = 0;
  se->position.store(start, std::memory_order_relaxed);
  se->lost.store(0, std::memory_order_relaxed);
  se->received.store(0, std::memory_order_relaxed);
  se->parked.store(0, std::memory_order_relaxed);
  // Release: the fields above are visible to whoever sees state 1 (janitor, stat, the agent).
  se->state.store(1, std::memory_order_release);
  d.unused_since_ns = 0;
  d.figures = std::make_shared<TopicLogFigures>();
  persist_->post(PersistTopic{d.id, name, d.ring, idx, d.shm, d.figures});
  info(d.uri + ": logging PERSISTENT messages for its durable subscriptions in " + d.log_dir);
}

void Conductor::on_open_durable(Client& c, const control::OpenDest& m, std::uint32_t id) {
  if (persist_ == nullptr) throw Error(ErrorCode::Unsupported, "this daemon has no persistence agent");
  const auto dest = Destination::parse("topic://" + m.name);
  if (m.name.rfind(control::kTempPrefix, 0) == 0)
    throw Error(ErrorCode::InvalidArgument, "a temporary topic cannot have durable subscriptions (JMS)");
  check_subscription_name(m.subscription);
  Dest& d = find_or_create(dest.uri(), dest.name(), m);
  make_durable(d, dest.name());
  auto it = d.subs.find(m.subscription);
  if (it == d.subs.end()) {
    // A new subscription receives what is published from now on: it starts after every message
    // published before now, which the agent logs first (a short, bounded wait on a rare call).
    // Acquire: every claim below this tail was made before now.
    const std::uint64_t tail = d.ring.header().tail.load(std::memory_order_acquire);
    auto answer = std::make_shared<std::promise<std::uint64_t>>();
    auto start = answer->get_future();
    persist_->post(ResolveStart{d.id, tail, answer});
    if (start.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
      throw Error(ErrorCode::Internal, "durable subscription '" + m.subscription + "' on " + d.uri +
                                           ": the persistence agent did not answer within 5 s (disk stalled?); try again");
    const std::uint64_t pos = start.get();
    it = d.subs.emplace(m.subscription, DurableSub{pos, -1, 0}).first;
    save_subs(d);
    post_min_position(d);
    info(describe(c) + " created durable subscription '" + m.subscription + "' on " + d.uri + " at offset " +
         std::to_string(pos));
  } else if (it->second.owner >= 0) {
    throw Error(ErrorCode::InvalidArgument, "durable subscription '" + m.subscription + "' on " + d.uri +
                                                " already has a subscriber (client " + std::to_string(it->second.owner) +
                                                "); JMS allows one at a time");
  }
  Endpoint e;
  e.dest_id = d.id;
  e.role = control::Role::DurableSubscriber;
  e.endpoint_id = next_endpoint_id_++;
  e.subscription = m.subscription;
  it->second.owner = *c.index;
  it->second.endpoint_id = e.endpoint_id;
  control::OpenOk ok;
  ok.dest_id = d.id;
  ok.endpoint_id = e.endpoint_id;
  ok.start_position = it->second.position;
  ok.shm_name = d.shm->name();
  ok.shm_size = d.shm->size();
  ok.log_dir = d.log_dir;
  c.endpoints.push_back(e);
  info(describe(c) + " opened durable subscriber " + std::to_string(e.endpoint_id) + " ('" + m.subscription + "') on " +
       d.uri + " from offset " + std::to_string(it->second.position));
  reply(c, MsgType::OpenOk, control::encode(ok), id);
}

void Conductor::on_commit_position(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  control::Reader r(body);
  control::CommitPosition m;
  control::decode(r, m);
  const auto e = std::find_if(c.endpoints.begin(), c.endpoints.end(), [&](const Endpoint& x) {
    return x.dest_id == m.dest_id && x.endpoint_id == m.endpoint_id && x.role == control::Role::DurableSubscriber;
  });
  if (e == c.endpoints.end())
    throw Error(ErrorCode::InvalidArgument, "no durable subscriber " + std::to_string(m.endpoint_id) + " on this connection");
  Dest* d = find_dest(m.dest_id);
  if (d == nullptr) throw Error(ErrorCode::BadDestination, "the topic of this durable subscriber is gone");
  auto& s = d->subs.at(e->subscription);
  if (m.position > s.position) {  // positions only move forward
    s.position = m.position;
    save_subs(*d);
    post_min_position(*d);
  }
  reply(c, MsgType::CloseOk, control::Writer{}, id);
}

void Conductor::release_durable(const Client& c, Dest& d, const Endpoint& e) {
  if (auto it = d.subs.find(e.subscription); it != d.subs.end() && it->second.endpoint_id == e.endpoint_id) {
    it->second.owner = -1;
    it->second.endpoint_id = 0;
  }
  info(describe(c) + " closed durable subscriber " + std::to_string(e.endpoint_id) + " ('" + e.subscription + "') on " + d.uri);
}

void Conductor::on_unsubscribe(Client& c, const std::vector<std::uint8_t>& body, std::uint32_t id) {
  control::Reader r(body);
  control::Unsubscribe m;
  control::decode(r, m);
  const auto dest = Destination::parse("topic://" + m.name);
  auto dit = dests_.find(dest.uri());
  if (dit == dests_.end() || dit->second.subs.find(m.subscription) == dit->second.subs.end())
    throw Error(ErrorCode::BadDestination, "no durable subscription '" + m.subscription + "' on " + dest.uri());
  Dest& d = dit->second;
  auto it = d.subs.find(m.subscription);
  if (it->second.owner >= 0)
    throw Error(ErrorCode::InvalidArgument, "durable subscription '" + m.subscription + "' on " + d.uri +
                                                " has an open subscriber (client " + std::to_string(it->second.owner) +
                                                "): close it before unsubscribing (JMS)");
  d.subs.erase(it);
  info(describe(c) + " deleted durable subscription '" + m.subscription + "' on " + d.uri);
  if (!d.subs.empty()) {
    save_subs(d);
    post_min_position(d);
  } else {
    // The last one: nothing needs the log any more. The agent closes and deletes it, and its
    // subscriber entry is freed.
    persist_->post(UnpersistTopic{d.id, true});
    auto* se = d.ring.subscriber(static_cast<std::uint32_t>(d.daemon_entry));
    // Release: as in release_endpoint.
    se->state.store(0, std::memory_order_release);
    d.subscriber_owner[static_cast<std::size_t>(d.daemon_entry)] = -1;
    d.daemon_entry = -1;
    d.figures.reset();
    mark_if_unused(d);
  }
  reply(c, MsgType::CloseOk, control::Writer{}, id);
}

void Conductor::restore_durable_topics() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(cfg_.dir + "/data", ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("topic.", 0) != 0) continue;
    const std::string name = n.substr(6), dir = e.path().string();
    TopicMeta meta;
    auto subs = load_subs(dir);
    if (!meta.load(dir) || subs.empty()) {
      warn("data directory " + dir + " has no topic.meta or no subscription: ignored");
      continue;
    }
    try {
      control::OpenDest m;
      m.kind = static_cast<std::uint8_t>(Destination::Kind::Topic);
      m.capacity = meta.capacity;
      m.max_message_size = meta.max_message_size;
      const auto dest = Destination::parse("topic://" + name);
      Dest& d = find_or_create(dest.uri(), name, m);
      make_durable(d, name);
      for (const auto& [sub, pos] : subs) d.subs[sub] = DurableSub{pos, -1, 0};
      post_min_position(d);
      info("restored " + d.uri + " with " + std::to_string(subs.size()) + " durable subscription(s)");
    } catch (const Error& err) {
      warn("stored topic " + name + " not restored: " + err.what());
    }
  }
}

}  // namespace shmbus::daemon
