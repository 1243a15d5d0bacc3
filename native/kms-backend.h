// The low-level KMS backend interface: a thin mirror of the libdrm calls the output-status
// code needs (resources, connector, encoder, CRTC, object properties, property metadata,
// atomic commit, master check) in plain C++ types, so that kms.cc, the shared
// policy-facing code, runs unchanged on the real libdrm backend (kms-libdrm.cc) and on the
// scripted fake (kms-scripted.cc). No libdrm header is needed to include this file.
#ifndef KEYWARDEN_NATIVE_KMS_BACKEND_H_
#define KEYWARDEN_NATIVE_KMS_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace keywarden::kms {

// The values of drm_mode.h / xf86drmMode.h, repeated so that the scripted backend builds
// without libdrm; kms-libdrm.cc static_asserts that they match.
inline constexpr uint32_t kObjectCrtc = 0xccccccccu;       // DRM_MODE_OBJECT_CRTC
inline constexpr uint32_t kObjectConnector = 0xc0c0c0c0u;  // DRM_MODE_OBJECT_CONNECTOR
inline constexpr uint32_t kPropRange = 1u << 1;            // DRM_MODE_PROP_RANGE
inline constexpr uint32_t kPropImmutable = 1u << 2;        // DRM_MODE_PROP_IMMUTABLE
inline constexpr uint32_t kPropEnum = 1u << 3;             // DRM_MODE_PROP_ENUM
inline constexpr uint32_t kPropBlob = 1u << 4;             // DRM_MODE_PROP_BLOB
inline constexpr uint32_t kPropObject = 1u << 6;           // DRM_MODE_PROP_OBJECT
inline constexpr uint32_t kPropAtomic = 0x80000000u;       // DRM_MODE_PROP_ATOMIC
inline constexpr uint32_t kModeFlagInterlace = 1u << 4;    // DRM_MODE_FLAG_INTERLACE
inline constexpr uint32_t kModeFlagDblScan = 1u << 5;      // DRM_MODE_FLAG_DBLSCAN

// drmModeConnection.
enum class Connection : uint32_t { kConnected = 1, kDisconnected = 2, kUnknown = 3 };

// drmModeRes: the ids of the device's objects.
struct Resources {
  std::vector<uint32_t> connectors;
  std::vector<uint32_t> encoders;
  std::vector<uint32_t> crtcs;
};

// drmModeConnector, without modes and properties (read those with GetObjectProperties).
struct ConnectorInfo {
  uint32_t id = 0;
  uint32_t encoderId = 0;  // the encoder currently attached, 0 when none
  uint32_t type = 0;       // DRM_MODE_CONNECTOR_*
  uint32_t typeIndex = 0;  // connector_type_id
  Connection connection = Connection::kUnknown;
};

// drmModeEncoder.
struct EncoderInfo {
  uint32_t id = 0;
  uint32_t crtcId = 0;
};

// The fields of drmModeModeInfo the snapshot reports or needs to compute the refresh rate.
struct ModeInfo {
  uint32_t clock = 0;  // kHz
  uint16_t hdisplay = 0, htotal = 0, vdisplay = 0, vtotal = 0, vscan = 0;
  uint32_t vrefresh = 0;
  uint32_t flags = 0;
};

// drmModeCrtc.
struct CrtcInfo {
  uint32_t id = 0;
  bool modeValid = false;
  ModeInfo mode;
};

// struct drm_mode_property_enum.
struct PropertyEnum {
  uint64_t value = 0;
  std::string name;
};

// drmModePropertyRes (enum entries only; range limits and blobs are not needed).
struct PropertyInfo {
  uint32_t id = 0;
  uint32_t flags = 0;
  std::string name;
  std::vector<PropertyEnum> enums;
};

// One entry of drmModeObjectProperties: a property id and the object's current value.
struct PropertyValue {
  uint32_t id = 0;
  uint64_t value = 0;
};

// One drmModeAtomicAddProperty call.
struct AtomicSet {
  uint32_t objectId = 0;
  uint32_t propertyId = 0;
  uint64_t value = 0;
};

// What KMS cannot tell: the scripted backend reads these from its scenario.
enum class SinkStatus { kUnknown, kOk, kRevoked, kTampered };
struct ConnectorExtras {
  SinkStatus sink = SinkStatus::kUnknown;
  bool cgmsA = false;
};

// Receives one raw uevent buffer, in the kernel's netlink format, from a backend thread.
using RawUeventSink = std::function<void(const uint8_t* data, size_t length)>;

class Backend {
 public:
  virtual ~Backend() = default;

  // "libdrm" or "scripted".
  virtual const char* Kind() const = 0;
  // "/dev/dri/card0", "scripted:<name>", or "" when no device was found.
  virtual std::string Device() const = 0;
  // False, with a reason, when there is nothing to read (built without libdrm, no device).
  virtual bool Available(std::string* reason) const = 0;
  // Whether the caller may commit (drmIsMaster).
  virtual bool IsMaster() = 0;
  // Whether DRM_CLIENT_CAP_ATOMIC was granted.
  virtual bool Atomic() const = 0;

  // Held by the shared code across one snapshot or one request, so that a scripted
  // timeline thread cannot change the state half-way. The libdrm backend returns an
  // unlocked lock (the kernel has its own locking).
  virtual std::unique_lock<std::recursive_mutex> Hold() = 0;

  // Each returns nullopt, with errno-style *error (a positive errno), on failure.
  virtual std::optional<Resources> GetResources(int* error) = 0;
  virtual std::optional<ConnectorInfo> GetConnectorCurrent(uint32_t id, int* error) = 0;
  virtual std::optional<EncoderInfo> GetEncoder(uint32_t id, int* error) = 0;
  virtual std::optional<CrtcInfo> GetCrtc(uint32_t id, int* error) = 0;
  virtual std::optional<std::vector<PropertyValue>> GetObjectProperties(uint32_t objectId,
                                                                        uint32_t objectType,
                                                                        int* error) = 0;
  virtual std::optional<PropertyInfo> GetProperty(uint32_t propertyId, int* error) = 0;
  // One atomic commit of every set, all or nothing. Returns 0 or a positive errno.
  virtual int AtomicCommit(const std::vector<AtomicSet>& sets) = 0;

  virtual ConnectorExtras Extras(uint32_t connectorId) = 0;

  // Starts delivering raw uevents to `sink` from a backend thread; false with *error when
  // the source cannot start (no netlink socket). Called at most once.
  virtual bool StartEvents(RawUeventSink sink, std::string* error) = 0;
  // Stops and joins every thread of the backend; no sink call happens after it returns.
  // Idempotent, and safe from a destructor or an environment cleanup hook.
  virtual void Shutdown() = 0;
};

// The libdrm backend (kms-libdrm.cc), or a stand-in that reports "built without libdrm"
// when the addon was built without it (kms.cc). `path` empty means the first
// /dev/dri/card*. Returns nullptr with *error when the device exists but cannot be opened.
std::unique_ptr<Backend> OpenLibdrmBackend(const std::string& path, bool dropMaster,
                                           std::string* error);

// Whether the addon was built with libdrm, and which version (pkg-config --modversion).
bool LibdrmBuilt();
const char* LibdrmVersion();

}  // namespace keywarden::kms

#endif  // KEYWARDEN_NATIVE_KMS_BACKEND_H_
