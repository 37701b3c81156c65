// The record values the persistence agent writes (their format lives with the log in bus/log,
// because durable subscribers in client processes read them too).
#pragma once
#include "log/message_records.hpp"

namespace shmbus::daemon {
using log::kQueueSnapshotMagic;
using log::QueueMessageRecord;
using log::QueueSettleRecord;
using log::QueueSnapshotHeader;
using log::RecordKind;
using log::SettleReason;
using log::TopicMessageRecord;
}  // namespace shmbus::daemon
