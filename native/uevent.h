// Kernel uevents: the parser of the netlink wire format, the builder of synthetic events
// (the scripted backend's, byte for byte the kernel's format), and the netlink watcher
// thread. Plain C++: no Node-API here.
//
// The kernel format (lib/kobject_uevent.c) is a header "ACTION@DEVPATH\0" followed by
// "KEY=VALUE\0" pairs, e.g.
//   change@/devices/pci0000:00/0000:00:02.0/drm/card0\0ACTION=change\0
//   DEVPATH=/devices/pci0000:00/0000:00:02.0/drm/card0\0SUBSYSTEM=drm\0HOTPLUG=1\0
//   CONNECTOR=42\0PROPERTY=77\0SEQNUM=2716\0
// libudev re-broadcasts start with "libudev\0" and a binary header; they are not parsed.
#ifndef KEYWARDEN_NATIVE_UEVENT_H_
#define KEYWARDEN_NATIVE_UEVENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "kms-backend.h"

namespace keywarden::uevent {

// The largest buffer ParseUevent accepts (the kernel's UEVENT_BUFFER_SIZE is 2048).
inline constexpr size_t kMaxUeventBytes = 16 * 1024;

struct Uevent {
  std::string action;
  std::string devpath;
  std::string subsystem;
  bool hotplug = false;
  std::optional<uint32_t> connector;
  std::optional<uint32_t> property;
  std::optional<uint64_t> seqnum;  // at most 2^53, so that JS reads it exactly
};

// A drm uevent in the kernel format, or nullopt: not drm, libudev format, malformed
// (no '@' header, a pair without '=', a missing terminating NUL, a bad number, a
// duplicate key, a header disagreeing with ACTION/DEVPATH, control characters) or larger
// than kMaxUeventBytes. Never reads outside [data, data + length).
std::optional<Uevent> ParseUevent(const uint8_t* data, size_t length);

// The kernel-format bytes of an event (each pair NUL-terminated).
std::string BuildUevent(const Uevent& event);

// Reads NETLINK_KOBJECT_UEVENT on its own thread and hands every datagram sent by the
// kernel to a sink. Stop() wakes the thread through an eventfd and joins it.
class NetlinkWatcher {
 public:
  NetlinkWatcher() = default;
  ~NetlinkWatcher() { Stop(); }
  NetlinkWatcher(const NetlinkWatcher&) = delete;
  NetlinkWatcher& operator=(const NetlinkWatcher&) = delete;

  // Opens and binds the socket, then starts the thread. False with *error (naming the
  // failed call) when the socket cannot be had. Call once.
  bool Start(kms::RawUeventSink sink, std::string* error);
  // Idempotent.
  void Stop();

 private:
  void Run();

  kms::RawUeventSink sink_;
  int socket_ = -1;
  int wake_ = -1;
  std::thread thread_;
};

}  // namespace keywarden::uevent

#endif  // KEYWARDEN_NATIVE_UEVENT_H_
