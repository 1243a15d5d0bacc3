// The real backend: libdrm on /dev/dri/cardN. Compiled only when binding.gyp finds libdrm
// (pkg-config), which also defines KW_HAVE_LIBDRM; kms.cc has the stand-in otherwise.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kms-backend.h"
#include "uevent.h"

#ifndef KW_LIBDRM_VERSION
#define KW_LIBDRM_VERSION ""
#endif

namespace keywarden::kms {

static_assert(kObjectCrtc == DRM_MODE_OBJECT_CRTC);
static_assert(kObjectConnector == DRM_MODE_OBJECT_CONNECTOR);
static_assert(kPropRange == DRM_MODE_PROP_RANGE);
static_assert(kPropImmutable == DRM_MODE_PROP_IMMUTABLE);
static_assert(kPropEnum == DRM_MODE_PROP_ENUM);
static_assert(kPropBlob == DRM_MODE_PROP_BLOB);
static_assert(kPropObject == DRM_MODE_PROP_OBJECT);
static_assert(kPropAtomic == DRM_MODE_PROP_ATOMIC);
static_assert(kModeFlagInterlace == DRM_MODE_FLAG_INTERLACE);
static_assert(kModeFlagDblScan == DRM_MODE_FLAG_DBLSCAN);
static_assert(static_cast<int>(Connection::kConnected) == DRM_MODE_CONNECTED);
static_assert(static_cast<int>(Connection::kDisconnected) == DRM_MODE_DISCONNECTED);
static_assert(static_cast<int>(Connection::kUnknown) == DRM_MODE_UNKNOWNCONNECTION);

namespace {

constexpr char kDriDir[] = "/dev/dri";

int LastError() { return errno != 0 ? errno : EIO; }

// A copy of `count` ids at `ids`, tolerating a null array with a zero count.
std::vector<uint32_t> Ids(const uint32_t* ids, int count) {
  if (ids == nullptr || count <= 0) return {};
  return std::vector<uint32_t>(ids, ids + count);
}

// /dev/dri/card0, card1, ... in numeric order.
std::vector<std::string> CardPaths() {
  std::vector<std::pair<unsigned long, std::string>> cards;
  if (DIR* dir = opendir(kDriDir)) {
    while (const dirent* entry = readdir(dir)) {
      const char* name = entry->d_name;
      if (std::strncmp(name, "card", 4) != 0 || name[4] == '\0') continue;
      const std::string digits(name + 4);
      if (digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
      cards.emplace_back(std::stoul(digits), std::string(kDriDir) + "/" + name);
    }
    closedir(dir);
  }
  std::sort(cards.begin(), cards.end());
  std::vector<std::string> out;
  for (auto& card : cards) out.push_back(std::move(card.second));
  return out;
}

bool HasConnectors(int fd) {
  drmModeRes* res = drmModeGetResources(fd);
  const bool has = res != nullptr && res->count_connectors > 0;
  drmModeFreeResources(res);
  return has;
}

class LibdrmBackend final : public Backend {
 public:
  // fd < 0: no device; `reason` says why.
  LibdrmBackend(int fd, std::string path, std::string reason, bool dropMaster)
      : fd_(fd), path_(std::move(path)), reason_(std::move(reason)) {
    if (fd_ < 0) return;
    // Also makes the atomic properties (CRTC_ID, ACTIVE) visible.
    atomic_ = drmSetClientCap(fd_, DRM_CLIENT_CAP_ATOMIC, 1) == 0;
    // Opening a card with no master makes this process master, which would lock the
    // player or compositor out; dropMaster hands it back.
    if (dropMaster && drmIsMaster(fd_)) drmDropMaster(fd_);
  }

  ~LibdrmBackend() override {
    Shutdown();
    if (fd_ >= 0) close(fd_);
  }

  const char* Kind() const override { return "libdrm"; }
  std::string Device() const override { return path_; }
  bool Available(std::string* reason) const override {
    if (fd_ >= 0) return true;
    *reason = reason_;
    return false;
  }
  bool IsMaster() override { return fd_ >= 0 && drmIsMaster(fd_) != 0; }
  bool Atomic() const override { return atomic_; }
  std::unique_lock<std::recursive_mutex> Hold() override { return {}; }

  std::optional<Resources> GetResources(int* error) override {
    errno = 0;
    drmModeRes* res = drmModeGetResources(fd_);
    if (res == nullptr) return Fail<Resources>(error);
    Resources out;
    out.connectors = Ids(res->connectors, res->count_connectors);
    out.encoders = Ids(res->encoders, res->count_encoders);
    out.crtcs = Ids(res->crtcs, res->count_crtcs);
    drmModeFreeResources(res);
    return out;
  }

  std::optional<ConnectorInfo> GetConnectorCurrent(uint32_t id, int* error) override {
    errno = 0;
    // The cached state: no forced probe (drmModeGetConnector would re-read EDIDs).
    drmModeConnector* c = drmModeGetConnectorCurrent(fd_, id);
    if (c == nullptr) return Fail<ConnectorInfo>(error);
    ConnectorInfo out;
    out.id = c->connector_id;
    out.encoderId = c->encoder_id;
    out.type = c->connector_type;
    out.typeIndex = c->connector_type_id;
    out.connection = c->connection == DRM_MODE_CONNECTED      ? Connection::kConnected
                     : c->connection == DRM_MODE_DISCONNECTED ? Connection::kDisconnected
                                                              : Connection::kUnknown;
    drmModeFreeConnector(c);
    return out;
  }

  std::optional<EncoderInfo> GetEncoder(uint32_t id, int* error) override {
    errno = 0;
    drmModeEncoder* e = drmModeGetEncoder(fd_, id);
    if (e == nullptr) return Fail<EncoderInfo>(error);
    EncoderInfo out{e->encoder_id, e->crtc_id};
    drmModeFreeEncoder(e);
    return out;
  }

  std::optional<CrtcInfo> GetCrtc(uint32_t id, int* error) override {
    errno = 0;
    drmModeCrtc* c = drmModeGetCrtc(fd_, id);
    if (c == nullptr) return Fail<CrtcInfo>(error);
    CrtcInfo out;
    out.id = c->crtc_id;
    out.modeValid = c->mode_valid != 0;
    out.mode.clock = c->mode.clock;
    out.mode.hdisplay = c->mode.hdisplay;
    out.mode.htotal = c->mode.htotal;
    out.mode.vdisplay = c->mode.vdisplay;
    out.mode.vtotal = c->mode.vtotal;
    out.mode.vscan = c->mode.vscan;
    out.mode.vrefresh = c->mode.vrefresh;
    out.mode.flags = c->mode.flags;
    drmModeFreeCrtc(c);
    return out;
  }

  std::optional<std::vector<PropertyValue>> GetObjectProperties(uint32_t objectId,
                                                                uint32_t objectType,
                                                                int* error) override {
    errno = 0;
    drmModeObjectProperties* props = drmModeObjectGetProperties(fd_, objectId, objectType);
    if (props == nullptr) return Fail<std::vector<PropertyValue>>(error);
    std::vector<PropertyValue> out;
    if (props->props != nullptr && props->prop_values != nullptr) {
      out.reserve(props->count_props);
      for (uint32_t i = 0; i < props->count_props; ++i) {
        out.push_back({props->props[i], props->prop_values[i]});
      }
    }
    drmModeFreeObjectProperties(props);
    return out;
  }

  std::optional<PropertyInfo> GetProperty(uint32_t id, int* error) override {
    errno = 0;
    drmModePropertyRes* p = drmModeGetProperty(fd_, id);
    if (p == nullptr) return Fail<PropertyInfo>(error);
    PropertyInfo out;
    out.id = p->prop_id;
    out.flags = p->flags;
    out.name.assign(p->name, strnlen(p->name, DRM_PROP_NAME_LEN));
    if ((p->flags & (DRM_MODE_PROP_ENUM | DRM_MODE_PROP_BITMASK)) != 0 && p->enums != nullptr) {
      for (int i = 0; i < p->count_enums; ++i) {
        const drm_mode_property_enum& e = p->enums[i];
        out.enums.push_back({e.value, std::string(e.name, strnlen(e.name, DRM_PROP_NAME_LEN))});
      }
    }
    drmModeFreeProperty(p);
    return out;
  }

  int AtomicCommit(const std::vector<AtomicSet>& sets) override {
    if (fd_ < 0) return ENODEV;
    drmModeAtomicReq* req = drmModeAtomicAlloc();
    if (req == nullptr) return ENOMEM;
    int rc = 0;
    for (const AtomicSet& set : sets) {
      const int added = drmModeAtomicAddProperty(req, set.objectId, set.propertyId, set.value);
      if (added < 0) {
        rc = -added;
        break;
      }
    }
    if (rc == 0) {
      const int committed = drmModeAtomicCommit(fd_, req, 0, nullptr);
      if (committed < 0) rc = -committed;  // libdrm returns -errno
    }
    drmModeAtomicFree(req);
    return rc;
  }

  ConnectorExtras Extras(uint32_t) override { return {}; }  // KMS cannot tell

  bool StartEvents(RawUeventSink sink, std::string* error) override {
    return watcher_.Start(std::move(sink), error);
  }

  void Shutdown() override { watcher_.Stop(); }

 private:
  template <typename T>
  static std::optional<T> Fail(int* error) {
    if (error) *error = LastError();
    return std::nullopt;
  }

  int fd_;
  std::string path_;
  std::string reason_;
  bool atomic_ = false;
  uevent::NetlinkWatcher watcher_;
};

int OpenCard(const std::string& path, std::string* error) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) *error = "cannot open " + path + ": " + std::strerror(errno);
  return fd;
}

}  // namespace

std::unique_ptr<Backend> OpenLibdrmBackend(const std::string& path, bool dropMaster,
                                           std::string* error) {
  if (!path.empty()) {
    const int fd = OpenCard(path, error);
    if (fd < 0) return nullptr;
    return std::make_unique<LibdrmBackend>(fd, path, "", dropMaster);
  }
  // The first card that drives displays: on a Raspberry Pi 4 card0 can be the
  // render-only v3d and card1 the vc4 display controller.
  const std::vector<std::string> cards = CardPaths();
  if (cards.empty()) {
    return std::make_unique<LibdrmBackend>(-1, "", "no DRM device (/dev/dri/card* not found)",
                                           false);
  }
  std::string firstError;
  int fallback = -1;
  std::string fallbackPath;
  for (const std::string& card : cards) {
    std::string openError;
    const int fd = OpenCard(card, &openError);
    if (fd < 0) {
      if (firstError.empty()) firstError = openError;
      continue;
    }
    if (HasConnectors(fd)) {
      if (fallback >= 0) close(fallback);
      return std::make_unique<LibdrmBackend>(fd, card, "", dropMaster);
    }
    if (fallback < 0) {
      fallback = fd;
      fallbackPath = card;
    } else {
      close(fd);
    }
  }
  if (fallback >= 0) {
    // Readable but without connectors: the snapshot then reports an empty device.
    return std::make_unique<LibdrmBackend>(fallback, fallbackPath, "", dropMaster);
  }
  *error = firstError;
  return nullptr;
}

bool LibdrmBuilt() { return true; }
const char* LibdrmVersion() { return KW_LIBDRM_VERSION; }

}  // namespace keywarden::kms
