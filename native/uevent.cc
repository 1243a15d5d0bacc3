#include "uevent.h"

#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

namespace keywarden::uevent {

namespace {

constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

bool Printable(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return false;
  }
  return true;
}

// Decimal digits only (no sign, no spaces), at most `max`.
std::optional<uint64_t> Decimal(std::string_view s, uint64_t max) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (max - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

std::string ErrnoText(const char* call, int err) {
  return std::string(call) + ": " + std::strerror(err);
}

}  // namespace

std::optional<Uevent> ParseUevent(const uint8_t* data, size_t length) {
  if (data == nullptr || length == 0 || length > kMaxUeventBytes) return std::nullopt;
  // Every field, the last included, ends with a NUL; a buffer that does not was cut short.
  if (data[length - 1] != 0) return std::nullopt;
  static constexpr char kLibudev[] = "libudev";  // 8 bytes with its NUL
  if (length >= sizeof kLibudev && std::memcmp(data, kLibudev, sizeof kLibudev) == 0) {
    return std::nullopt;
  }

  enum : unsigned {
    kAction = 1,
    kDevpath = 2,
    kSubsystem = 4,
    kHotplug = 8,
    kConnector = 16,
    kProperty = 32,
    kSeqnum = 64
  };
  unsigned seen = 0;
  Uevent event;
  std::string_view headerAction;
  std::string_view headerPath;
  bool header = true;
  size_t pos = 0;
  while (pos < length) {
    // Found: data[length - 1] is a NUL.
    const auto* nul = static_cast<const uint8_t*>(std::memchr(data + pos, 0, length - pos));
    const size_t end = static_cast<size_t>(nul - data);
    const std::string_view field(reinterpret_cast<const char*>(data + pos), end - pos);
    pos = end + 1;
    if (field.empty() || !Printable(field)) return std::nullopt;
    if (header) {
      header = false;
      const size_t at = field.find('@');
      if (at == std::string_view::npos || at == 0 || at + 1 == field.size()) return std::nullopt;
      headerAction = field.substr(0, at);
      headerPath = field.substr(at + 1);
      continue;
    }
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0) return std::nullopt;
    const std::string_view key = field.substr(0, eq);
    const std::string_view value = field.substr(eq + 1);
    unsigned bit = 0;
    if (key == "ACTION") {
      bit = kAction;
      event.action = value;
    } else if (key == "DEVPATH") {
      bit = kDevpath;
      event.devpath = value;
    } else if (key == "SUBSYSTEM") {
      bit = kSubsystem;
      event.subsystem = value;
    } else if (key == "HOTPLUG") {
      bit = kHotplug;
      if (value != "0" && value != "1") return std::nullopt;
      event.hotplug = value == "1";
    } else if (key == "CONNECTOR" || key == "PROPERTY") {
      bit = key == "CONNECTOR" ? kConnector : kProperty;
      const std::optional<uint64_t> id = Decimal(value, UINT32_MAX);
      if (!id) return std::nullopt;
      (bit == kConnector ? event.connector : event.property) = static_cast<uint32_t>(*id);
    } else if (key == "SEQNUM") {
      bit = kSeqnum;
      event.seqnum = Decimal(value, kMaxSafeInteger);
      if (!event.seqnum) return std::nullopt;
    } else {
      continue;  // DEVNAME, MAJOR, MINOR, LEASE, ...: not needed
    }
    if (seen & bit) return std::nullopt;
    seen |= bit;
  }
  const unsigned required = kAction | kDevpath | kSubsystem;
  if ((seen & required) != required) return std::nullopt;
  if (event.action != headerAction || event.devpath != headerPath) return std::nullopt;
  if (event.subsystem != "drm") return std::nullopt;
  return event;
}

std::string BuildUevent(const Uevent& event) {
  std::string out;
  const auto field = [&out](std::string_view text) {
    out.append(text);
    out.push_back('\0');
  };
  field(event.action + "@" + event.devpath);
  field("ACTION=" + event.action);
  field("DEVPATH=" + event.devpath);
  field("SUBSYSTEM=" + event.subsystem);
  if (event.hotplug) field("HOTPLUG=1");
  if (event.connector) field("CONNECTOR=" + std::to_string(*event.connector));
  if (event.property) field("PROPERTY=" + std::to_string(*event.property));
  // What the drm class adds (drm_sysfs): the parser skips it, as it must on real events.
  const std::string_view card0 = "/card0";
  if (event.devpath.size() >= card0.size() &&
      event.devpath.compare(event.devpath.size() - card0.size(), card0.size(), card0) == 0) {
    field("DEVNAME=dri/card0");
    field("DEVTYPE=drm_minor");
    field("MAJOR=226");
    field("MINOR=0");
  }
  if (event.seqnum) field("SEQNUM=" + std::to_string(*event.seqnum));
  return out;
}

bool NetlinkWatcher::Start(kms::RawUeventSink sink, std::string* error) {
  if (thread_.joinable() || socket_ >= 0) {
    *error = "the uevent watcher was already started";
    return false;
  }
  const int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        NETLINK_KOBJECT_UEVENT);
  if (fd < 0) {
    *error = ErrnoText("socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)", errno);
    return false;
  }
  // A burst of hot-plug events must not overflow the default buffer; FORCE needs
  // CAP_NET_ADMIN, so fall back to the capped SO_RCVBUF.
  const int size = 1 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = 1;  // the kernel's multicast group (libudev's is 2)
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    *error = ErrnoText("bind(NETLINK_KOBJECT_UEVENT)", errno);
    close(fd);
    return false;
  }
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    *error = ErrnoText("eventfd", errno);
    close(fd);
    return false;
  }
  socket_ = fd;
  wake_ = wake;
  sink_ = std::move(sink);
  try {
    thread_ = std::thread(&NetlinkWatcher::Run, this);
  } catch (const std::system_error& e) {
    *error = std::string("cannot start the uevent thread: ") + e.what();
    close(socket_);
    close(wake_);
    socket_ = wake_ = -1;
    return false;
  }
  return true;
}

void NetlinkWatcher::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    ssize_t written;
    do {
      written = write(wake_, &one, sizeof one);
    } while (written < 0 && errno == EINTR);
    thread_.join();
  }
  if (socket_ >= 0) close(socket_);
  if (wake_ >= 0) close(wake_);
  socket_ = wake_ = -1;
}

void NetlinkWatcher::Run() {
  std::vector<uint8_t> buffer(kMaxUeventBytes);
  for (;;) {
    pollfd fds[2] = {{wake_, POLLIN, 0}, {socket_, POLLIN, 0}};
    const int ready = poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      if (!(fds[1].revents & POLLIN)) return;
    }
    for (;;) {
      sockaddr_nl from{};
      iovec iov{buffer.data(), buffer.size()};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      const ssize_t n = recvmsg(socket_, &msg, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == ENOBUFS) {
          // Events were lost: tell the reader to re-read everything.
          Uevent lost;
          lost.action = "change";
          lost.devpath = "/keywarden/uevent-overflow";
          lost.subsystem = "drm";
          lost.hotplug = true;
          const std::string raw = BuildUevent(lost);
          sink_(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
          continue;
        }
        return;
      }
      // Only the kernel (port 0) is believed; a truncated datagram is dropped.
      if ((msg.msg_flags & MSG_TRUNC) != 0 || from.nl_pid != 0 || n == 0) continue;
      sink_(buffer.data(), static_cast<size_t>(n));
    }
  }
}

}  // namespace keywarden::uevent
