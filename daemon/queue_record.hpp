// The record values the persistence agent writes (their format lives with the log in bus/log,
// because durable subscribers in client processes read them too).
#pragma once
#include "log/message_records.hpp"

#include <cstddef>
#include <vector>

namespace shmbus::daemon {
using log::kQueueSnapshotMagic;
using log::QueueMessageRecord;
using log::QueueSettleRecord;
using log::QueueSnapshotHeader;
using log::RecordKind;
using log::SettleReason;
using log::TopicMessageRecord;

/// Appends the bytes of a record struct (or any trivially copyable value) to a value being built.
template <class T>
void put(std::vector<std::byte>& v, const T& x) {
  const auto* p = reinterpret_cast<const std::byte*>(&x);
  v.insert(v.end(), p, p + sizeof x);
}
}  // namespace shmbus::daemon
