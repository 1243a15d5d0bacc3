// Output status over DRM/KMS: the shared, policy-facing code that runs on both backends
// (kms-backend.h) and the JS class over it. Typed in src/native/binding.ts, its only
// caller.
//
//   new KmsDevice({ backend: 'libdrm', path?, strict?, dropMaster? })
//   new KmsDevice({ backend: 'scripted', scenario })
//   .snapshot() .requestProtection(id, type) .releaseProtection(id)
//   .watch(cb) .ref() .unref() .close() .closed
//   kmsBuildInfo(), parseUevent(Uint8Array)
//
// Properties are found by NAME ("Content Protection", "HDCP Content Type", "CRTC_ID",
// "ACTIVE") and enum values decoded by their names, never by numeric ids or values.
#ifndef KEYWARDEN_NATIVE_KMS_H_
#define KEYWARDEN_NATIVE_KMS_H_

#include <napi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kms-backend.h"

namespace keywarden::kms {

// The kernel's property and enum names (drivers/gpu/drm/drm_connector.c, drm_hdcp.c).
inline constexpr char kContentProtection[] = "Content Protection";
inline constexpr char kHdcpContentType[] = "HDCP Content Type";
inline constexpr char kCpUndesired[] = "Undesired";
inline constexpr char kCpDesired[] = "Desired";
inline constexpr char kCpEnabled[] = "Enabled";
inline constexpr char kHdcpType0[] = "HDCP Type0";
inline constexpr char kHdcpType1[] = "HDCP Type1";

// The connector type's name in the JS API (KmsConnectorType), by DRM_MODE_CONNECTOR_*
// value; "Unknown" for values this build does not know.
const char* ConnectorTypeName(uint32_t type);
// The kernel's name (drm_connector_enum_list), used for "HDMI-A-1": the same as
// ConnectorTypeName except "DIN" for 9PinDIN.
const char* KernelConnectorTypeName(uint32_t type);
// The DRM_MODE_CONNECTOR_* value of an API type name.
std::optional<uint32_t> ConnectorTypeFromName(const std::string& name);

// A JS Error whose `code` is a catalogue name (src/errors/catalogue.ts).
Napi::Error KmsError(Napi::Env env, const char* code, const std::string& message);

enum class Protection { kUnsupported, kUndesired, kDesired, kEnabled };
enum class ContentType { kUnsupported, kType0, kType1 };

struct ConnectorStatus {
  uint32_t id = 0;
  std::string name;
  const char* type = "Unknown";
  uint32_t typeIndex = 0;
  Connection connection = Connection::kUnknown;
  bool active = false;
  uint32_t crtcId = 0;
  bool hasMode = false;
  uint32_t width = 0, height = 0;
  double refresh = 0;
  Protection protection = Protection::kUnsupported;
  ContentType contentType = ContentType::kUnsupported;
  SinkStatus sink = SinkStatus::kUnknown;
  bool cgmsA = false;
};

struct Snapshot {
  std::string backend;
  bool available = false;
  std::string reason;
  std::string device;
  bool master = false;
  std::vector<ConnectorStatus> connectors;
};

struct ProtectionResult {
  bool ok = false;
  std::string reason;
  Protection protection = Protection::kUnsupported;
};

// The whole output state, read through the backend's libdrm-shaped calls.
Snapshot BuildSnapshot(Backend& backend);
// Sets "Content Protection" to Desired (with "HDCP Content Type" when the connector has
// it) in one atomic commit, or explains why it cannot.
ProtectionResult RequestProtection(Backend& backend, uint32_t connectorId, int contentType);
// Sets "Content Protection" to Undesired.
ProtectionResult ReleaseProtection(Backend& backend, uint32_t connectorId);

class EventChannel;

class KmsDevice : public Napi::ObjectWrap<KmsDevice> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit KmsDevice(const Napi::CallbackInfo& info);
  ~KmsDevice() override;

 private:
  Napi::Value Snapshot(const Napi::CallbackInfo& info);
  Napi::Value RequestProtection(const Napi::CallbackInfo& info);
  Napi::Value ReleaseProtection(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);

  Backend& Open(Napi::Env env);
  // Stops the backend's threads and releases the event channel; no JS is called.
  void Shutdown();
  static void CleanupHook(void* self);

  std::unique_ptr<Backend> backend_;  // null after close()
  std::shared_ptr<EventChannel> channel_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
  bool refed_ = true;
  bool watching_ = false;
};

// kmsBuildInfo(): { libdrm: boolean, libdrmVersion?: string }
Napi::Value KmsBuildInfo(const Napi::CallbackInfo& info);
// parseUevent(raw: Uint8Array): NativeUevent | null
Napi::Value ParseUeventJs(const Napi::CallbackInfo& info);

}  // namespace keywarden::kms

#endif  // KEYWARDEN_NATIVE_KMS_H_
