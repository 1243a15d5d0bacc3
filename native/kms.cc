#include "kms.h"

#include <errno.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include "kms-scripted.h"
#include "uevent.h"

namespace keywarden::kms {

namespace {

struct TypeName {
  const char* api;     // KmsConnectorType in src/native/binding.ts
  const char* kernel;  // drm_connector_enum_list
};

// Indexed by DRM_MODE_CONNECTOR_* (drm_mode.h).
constexpr TypeName kTypeNames[] = {
    {"Unknown", "Unknown"},      // 0
    {"VGA", "VGA"},              // 1
    {"DVI-I", "DVI-I"},          // 2
    {"DVI-D", "DVI-D"},          // 3
    {"DVI-A", "DVI-A"},          // 4
    {"Composite", "Composite"},  // 5
    {"SVIDEO", "SVIDEO"},        // 6
    {"LVDS", "LVDS"},            // 7
    {"Component", "Component"},  // 8
    {"9PinDIN", "DIN"},          // 9
    {"DP", "DP"},                // 10
    {"HDMI-A", "HDMI-A"},        // 11
    {"HDMI-B", "HDMI-B"},        // 12
    {"TV", "TV"},                // 13
    {"eDP", "eDP"},              // 14
    {"Virtual", "Virtual"},      // 15
    {"DSI", "DSI"},              // 16
    {"DPI", "DPI"},              // 17
    {"Writeback", "Writeback"},  // 18
    {"SPI", "SPI"},              // 19
    {"USB", "USB"},              // 20
};
constexpr uint32_t kTypeCount = sizeof kTypeNames / sizeof kTypeNames[0];

std::string ErrnoText(int err) { return err > 0 ? std::strerror(err) : "unknown error"; }

// Property metadata by id, fetched once per snapshot or request.
class PropertyCache {
 public:
  explicit PropertyCache(Backend& backend) : backend_(backend) {}

  const PropertyInfo* Get(uint32_t id) {
    auto it = cache_.find(id);
    if (it == cache_.end()) {
      int error = 0;
      it = cache_.emplace(id, backend_.GetProperty(id, &error)).first;
    }
    return it->second ? &*it->second : nullptr;
  }

 private:
  Backend& backend_;
  std::map<uint32_t, std::optional<PropertyInfo>> cache_;
};

struct Found {
  const PropertyInfo* info;
  uint64_t value;
};

// The object's property called `name`: matched by name, whatever its id.
std::optional<Found> FindProperty(PropertyCache& cache, const std::vector<PropertyValue>& values,
                                  const char* name) {
  for (const PropertyValue& pv : values) {
    const PropertyInfo* info = cache.Get(pv.id);
    if (info && info->name == name) return Found{info, pv.value};
  }
  return std::nullopt;
}

// The name of an enum property's value, or nullopt (not an enum, or no such entry).
std::optional<std::string> EnumName(const PropertyInfo& info, uint64_t value) {
  if ((info.flags & kPropEnum) == 0) return std::nullopt;
  for (const PropertyEnum& e : info.enums) {
    if (e.value == value) return e.name;
  }
  return std::nullopt;
}

std::optional<uint64_t> EnumValue(const PropertyInfo& info, const char* name) {
  if ((info.flags & kPropEnum) == 0) return std::nullopt;
  for (const PropertyEnum& e : info.enums) {
    if (e.name == name) return e.value;
  }
  return std::nullopt;
}

Protection DecodeProtection(const std::optional<Found>& cp) {
  if (!cp) return Protection::kUnsupported;
  const std::optional<std::string> name = EnumName(*cp->info, cp->value);
  if (name == kCpUndesired) return Protection::kUndesired;
  if (name == kCpDesired) return Protection::kDesired;
  if (name == kCpEnabled) return Protection::kEnabled;
  return Protection::kUnsupported;  // a value this code cannot interpret
}

ContentType DecodeContentType(const std::optional<Found>& type) {
  if (!type) return ContentType::kUnsupported;
  const std::optional<std::string> name = EnumName(*type->info, type->value);
  if (name == kHdcpType0 || name == "Type0") return ContentType::kType0;
  if (name == kHdcpType1 || name == "Type1") return ContentType::kType1;
  return ContentType::kUnsupported;
}

std::optional<uint64_t> TypeEnumValue(const PropertyInfo& info, int type) {
  std::optional<uint64_t> v = EnumValue(info, type == 1 ? kHdcpType1 : kHdcpType0);
  return v ? v : EnumValue(info, type == 1 ? "Type1" : "Type0");
}

// drm_mode_vrefresh(), to two decimals (59.94, 23.98).
double Refresh(const ModeInfo& m) {
  if (m.clock == 0 || m.htotal == 0 || m.vtotal == 0) return m.vrefresh;
  double num = static_cast<double>(m.clock) * 1000.0;
  double den = static_cast<double>(m.htotal) * m.vtotal;
  if (m.flags & kModeFlagInterlace) num *= 2;
  if (m.flags & kModeFlagDblScan) den *= 2;
  if (m.vscan > 1) den *= m.vscan;
  return std::round(num / den * 100.0) / 100.0;
}

std::vector<PropertyValue> NoProperties() { return {}; }

std::string ConnectorName(const ConnectorInfo& c) {
  return std::string(KernelConnectorTypeName(c.type)) + "-" + std::to_string(c.typeIndex);
}

ConnectorStatus ReadConnector(Backend& backend, PropertyCache& cache, const ConnectorInfo& c) {
  ConnectorStatus st;
  st.id = c.id;
  st.name = ConnectorName(c);
  st.type = ConnectorTypeName(c.type);
  st.typeIndex = c.typeIndex;
  st.connection = c.connection;
  int error = 0;
  const std::vector<PropertyValue> props =
      backend.GetObjectProperties(c.id, kObjectConnector, &error).value_or(NoProperties());
  st.protection = DecodeProtection(FindProperty(cache, props, kContentProtection));
  st.contentType = DecodeContentType(FindProperty(cache, props, kHdcpContentType));

  // The CRTC: the atomic CRTC_ID property when the client is atomic, else the legacy
  // encoder link.
  if (const std::optional<Found> crtcProp = FindProperty(cache, props, "CRTC_ID")) {
    if (crtcProp->value <= UINT32_MAX) st.crtcId = static_cast<uint32_t>(crtcProp->value);
  } else if (c.encoderId != 0) {
    if (const std::optional<EncoderInfo> enc = backend.GetEncoder(c.encoderId, &error)) {
      st.crtcId = enc->crtcId;
    }
  }
  if (st.crtcId != 0) {
    if (const std::optional<CrtcInfo> crtc = backend.GetCrtc(st.crtcId, &error)) {
      if (crtc->modeValid) {
        st.hasMode = true;
        st.width = crtc->mode.hdisplay;
        st.height = crtc->mode.vdisplay;
        st.refresh = Refresh(crtc->mode);
      }
      const std::vector<PropertyValue> crtcProps =
          backend.GetObjectProperties(st.crtcId, kObjectCrtc, &error).value_or(NoProperties());
      const std::optional<Found> activeProp = FindProperty(cache, crtcProps, "ACTIVE");
      // Driving a CRTC: it has a mode and, on atomic drivers, is not switched off.
      st.active = crtc->modeValid && (!activeProp || activeProp->value != 0);
    }
  }
  const ConnectorExtras extras = backend.Extras(c.id);
  st.sink = extras.sink;
  st.cgmsA = extras.cgmsA;
  return st;
}

// The connector and its properties, or a reason why the request cannot go on.
struct Target {
  ConnectorInfo info;
  std::vector<PropertyValue> props;
};

std::optional<Target> FindTarget(Backend& backend, uint32_t connectorId, ProtectionResult* out) {
  std::string reason;
  if (!backend.Available(&reason)) {
    out->reason = reason;
    return std::nullopt;
  }
  int error = 0;
  const std::optional<ConnectorInfo> info = backend.GetConnectorCurrent(connectorId, &error);
  if (!info) {
    out->reason = "no connector " + std::to_string(connectorId) + " (" + ErrnoText(error) + ")";
    return std::nullopt;
  }
  std::optional<std::vector<PropertyValue>> props =
      backend.GetObjectProperties(connectorId, kObjectConnector, &error);
  if (!props) {
    out->reason = "cannot read the properties of " + ConnectorName(*info) + " (" +
                  ErrnoText(error) + ")";
    return std::nullopt;
  }
  return Target{*info, std::move(*props)};
}

// A connector whose HDCP is to change: the target, its kernel name and its "Content
// Protection" property.
struct HdcpTarget {
  Target connector;
  std::string name;
  Found cp;
};

// FindTarget, then its "Content Protection" property; sets out->protection to the current
// state. nullopt with out->reason set when the connector or the property is missing.
std::optional<HdcpTarget> FindHdcpTarget(Backend& backend, PropertyCache& cache,
                                         uint32_t connectorId, ProtectionResult* out) {
  std::optional<Target> target = FindTarget(backend, connectorId, out);
  if (!target) return std::nullopt;
  std::string name = ConnectorName(target->info);
  const std::optional<Found> cp = FindProperty(cache, target->props, kContentProtection);
  if (!cp) {
    out->reason = name + " has no \"Content Protection\" property (HDCP unsupported)";
    return std::nullopt;
  }
  out->protection = DecodeProtection(cp);
  return HdcpTarget{std::move(*target), std::move(name), *cp};
}

// Commits `sets` when this process may, and reports the state read back afterwards.
ProtectionResult Commit(Backend& backend, PropertyCache& cache, const Target& target,
                        const std::vector<AtomicSet>& sets, Protection current) {
  ProtectionResult out;
  out.protection = current;
  if (!backend.Atomic()) {
    out.reason = "the driver does not support atomic modesetting";
    return out;
  }
  if (!backend.IsMaster()) {
    out.reason = "not DRM master";
    return out;
  }
  const int rc = backend.AtomicCommit(sets);
  if (rc == EACCES || rc == EPERM) {
    out.reason = "not DRM master";
    return out;
  }
  if (rc != 0) {
    out.reason = "atomic commit failed: " + ErrnoText(rc);
    return out;
  }
  int error = 0;
  if (const auto props = backend.GetObjectProperties(target.info.id, kObjectConnector, &error)) {
    out.protection = DecodeProtection(FindProperty(cache, *props, kContentProtection));
  }
  out.ok = true;
  return out;
}

}  // namespace

const char* ConnectorTypeName(uint32_t type) {
  return type < kTypeCount ? kTypeNames[type].api : "Unknown";
}

const char* KernelConnectorTypeName(uint32_t type) {
  return type < kTypeCount ? kTypeNames[type].kernel : "Unknown";
}

std::optional<uint32_t> ConnectorTypeFromName(const std::string& name) {
  for (uint32_t i = 0; i < kTypeCount; ++i) {
    if (name == kTypeNames[i].api) return i;
  }
  return std::nullopt;
}

namespace {

/** A parsed uevent as the JS object src/native/binding.ts types as NativeUevent. */
Napi::Object UeventToJs(Napi::Env env, const uevent::Uevent& event) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("action", event.action);
  o.Set("devpath", event.devpath);
  o.Set("subsystem", event.subsystem);
  o.Set("hotplug", event.hotplug);
  if (event.connector) o.Set("connector", static_cast<double>(*event.connector));
  if (event.property) o.Set("property", static_cast<double>(*event.property));
  if (event.seqnum) o.Set("seqnum", static_cast<double>(*event.seqnum));
  return o;
}

}  // namespace

Napi::Error KmsError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

Snapshot BuildSnapshot(Backend& backend) {
  std::unique_lock<std::recursive_mutex> hold = backend.Hold();
  Snapshot s;
  s.backend = backend.Kind();
  s.device = backend.Device();
  if (!backend.Available(&s.reason)) return s;
  s.master = backend.IsMaster();
  int error = 0;
  const std::optional<Resources> res = backend.GetResources(&error);
  if (!res) {
    s.reason = "drmModeGetResources failed: " + ErrnoText(error);
    return s;
  }
  s.available = true;
  PropertyCache cache(backend);
  for (const uint32_t id : res->connectors) {
    // A connector can vanish between the two calls (DP MST unplug): skip it.
    if (const std::optional<ConnectorInfo> c = backend.GetConnectorCurrent(id, &error)) {
      s.connectors.push_back(ReadConnector(backend, cache, *c));
    }
  }
  return s;
}

ProtectionResult RequestProtection(Backend& backend, uint32_t connectorId, int contentType) {
  std::unique_lock<std::recursive_mutex> hold = backend.Hold();
  ProtectionResult out;
  PropertyCache cache(backend);
  const std::optional<HdcpTarget> target = FindHdcpTarget(backend, cache, connectorId, &out);
  if (!target) return out;
  const std::string& name = target->name;
  const std::optional<uint64_t> desired = EnumValue(*target->cp.info, kCpDesired);
  if (!desired) {
    out.reason = name + ": \"Content Protection\" has no Desired value";
    return out;
  }
  std::vector<AtomicSet> sets{{connectorId, target->cp.info->id, *desired}};
  const std::optional<Found> type = FindProperty(cache, target->connector.props, kHdcpContentType);
  ContentType currentType = ContentType::kType0;  // without the property, HDCP is type 0
  if (type) {
    currentType = DecodeContentType(type);
    const std::optional<uint64_t> value = TypeEnumValue(*type->info, contentType);
    if (!value) {
      out.reason = name + ": \"HDCP Content Type\" has no Type" + std::to_string(contentType);
      return out;
    }
    sets.push_back({connectorId, type->info->id, *value});
  } else if (contentType == 1) {
    out.reason = name + " has no \"HDCP Content Type\" property: type 1 cannot be requested";
    return out;
  }
  // Already what was asked (e.g. enabled by the compositor): nothing to commit.
  if (out.protection == Protection::kEnabled &&
      currentType == (contentType == 1 ? ContentType::kType1 : ContentType::kType0)) {
    out.ok = true;
    return out;
  }
  return Commit(backend, cache, target->connector, sets, out.protection);
}

ProtectionResult ReleaseProtection(Backend& backend, uint32_t connectorId) {
  std::unique_lock<std::recursive_mutex> hold = backend.Hold();
  ProtectionResult out;
  PropertyCache cache(backend);
  const std::optional<HdcpTarget> target = FindHdcpTarget(backend, cache, connectorId, &out);
  if (!target) return out;
  if (out.protection == Protection::kUndesired) {
    out.ok = true;
    return out;
  }
  const std::optional<uint64_t> undesired = EnumValue(*target->cp.info, kCpUndesired);
  if (!undesired) {
    out.reason = target->name + ": \"Content Protection\" has no Undesired value";
    return out;
  }
  return Commit(backend, cache, target->connector, {{connectorId, target->cp.info->id, *undesired}},
                out.protection);
}

// ---------------------------------------------------------------------------------------
// Delivering uevents to JS.
//
// Backend threads call Deliver(); the JS thread creates, refs, unrefs and releases the
// thread-safe function. The TSFN is touched only under mu_ while open_, and its finalizer
// (which runs before Node frees it, also at environment teardown) clears open_, so no
// thread can reach a freed TSFN.
class EventChannel {
 public:
  static std::shared_ptr<EventChannel> Open(Napi::Env env, const Napi::Function& callback,
                                            bool refed) {
    auto channel = std::make_shared<EventChannel>();
    auto* keep = new std::shared_ptr<EventChannel>(channel);
    napi_threadsafe_function tsfn = nullptr;
    const napi_status status = napi_create_threadsafe_function(
        env, callback, nullptr, Napi::String::New(env, "keywarden:uevent"), 0, 1, keep,
        &EventChannel::Finalize, channel.get(), &EventChannel::CallJs, &tsfn);
    if (status != napi_ok) {
      delete keep;
      throw KmsError(env, "UEVENT_FAILED", "cannot create the uevent thread-safe function");
    }
    channel->tsfn_ = tsfn;
    channel->open_ = true;
    if (!refed) napi_unref_threadsafe_function(env, tsfn);
    return channel;
  }

  // Any thread: parses, then queues a drm event for the JS thread.
  void Deliver(const uint8_t* data, size_t length) {
    std::optional<uevent::Uevent> parsed = uevent::ParseUevent(data, length);
    if (!parsed) return;
    auto* event = new uevent::Uevent(std::move(*parsed));
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_ || napi_call_threadsafe_function(tsfn_, event, napi_tsfn_nonblocking) != napi_ok) {
      delete event;
    }
  }

  void SetRef(napi_env env, bool ref) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return;
    if (ref) {
      napi_ref_threadsafe_function(env, tsfn_);
    } else {
      napi_unref_threadsafe_function(env, tsfn_);
    }
  }

  // Events still queued are dropped: the listener hears nothing after close().
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    if (!open_) return;
    open_ = false;
    napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  }

 private:
  static void Finalize(napi_env, void* data, void*) {
    auto* keep = static_cast<std::shared_ptr<EventChannel>*>(data);
    {
      std::lock_guard<std::mutex> lock((*keep)->mu_);
      (*keep)->open_ = false;
    }
    delete keep;
  }

  // `context` is the channel, alive until Finalize (which runs after the last CallJs).
  static void CallJs(napi_env env, napi_value callback, void* context, void* data) {
    std::unique_ptr<uevent::Uevent> event(static_cast<uevent::Uevent*>(data));
    if (env == nullptr || callback == nullptr) return;  // teardown: drop it
    if (static_cast<EventChannel*>(context)->released_) return;
    // Nothing may escape into Node: a throwing listener, or an environment that can no
    // longer run JS (a worker being terminated) makes node-addon-api throw here.
    try {
      Napi::Function(env, callback).Call({UeventToJs(Napi::Env(env), *event)});
    } catch (const Napi::Error& err) {
      try {
        err.ThrowAsJavaScriptException();  // back to JS, when JS can still run
      } catch (...) {
      }
    } catch (...) {
    }
  }

  std::mutex mu_;
  napi_threadsafe_function tsfn_ = nullptr;
  bool open_ = false;
  std::atomic<bool> released_{false};  // read on the JS thread without mu_
};

// ---------------------------------------------------------------------------------------
// The JS class.

namespace {

Napi::Object SnapshotToJs(Napi::Env env, const Snapshot& s) {
  static constexpr const char* kConnection[] = {"unknown", "connected", "disconnected", "unknown"};
  static constexpr const char* kProtection[] = {"unsupported", "undesired", "desired", "enabled"};
  static constexpr const char* kType[] = {"unsupported", "type0", "type1"};
  static constexpr const char* kSink[] = {"unknown", "ok", "revoked", "tampered"};
  Napi::Object o = Napi::Object::New(env);
  o.Set("backend", s.backend);
  o.Set("available", s.available);
  if (!s.available && !s.reason.empty()) o.Set("reason", s.reason);
  o.Set("device", s.device);
  o.Set("master", s.master);
  Napi::Array list = Napi::Array::New(env, s.connectors.size());
  for (size_t i = 0; i < s.connectors.size(); ++i) {
    const ConnectorStatus& c = s.connectors[i];
    Napi::Object co = Napi::Object::New(env);
    co.Set("id", static_cast<double>(c.id));
    co.Set("name", c.name);
    co.Set("type", c.type);
    co.Set("typeIndex", static_cast<double>(c.typeIndex));
    const auto conn = static_cast<uint32_t>(c.connection);
    co.Set("connection", kConnection[conn <= 3 ? conn : 0]);
    co.Set("active", c.active);
    co.Set("crtcId", static_cast<double>(c.crtcId));
    if (c.hasMode) {
      Napi::Object mode = Napi::Object::New(env);
      mode.Set("width", static_cast<double>(c.width));
      mode.Set("height", static_cast<double>(c.height));
      mode.Set("refresh", c.refresh);
      co.Set("mode", mode);
    } else {
      co.Set("mode", env.Null());
    }
    co.Set("contentProtection", kProtection[static_cast<int>(c.protection)]);
    co.Set("hdcpContentType", kType[static_cast<int>(c.contentType)]);
    co.Set("sink", kSink[static_cast<int>(c.sink)]);
    co.Set("cgmsA", c.cgmsA);
    list.Set(static_cast<uint32_t>(i), co);
  }
  o.Set("connectors", list);
  return o;
}

Napi::Object ResultToJs(Napi::Env env, const ProtectionResult& r) {
  static constexpr const char* kProtection[] = {"unsupported", "undesired", "desired", "enabled"};
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", r.ok);
  if (!r.reason.empty()) o.Set("reason", r.reason);
  o.Set("contentProtection", kProtection[static_cast<int>(r.protection)]);
  return o;
}

uint32_t ConnectorIdArg(const Napi::Value& v) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 1 && d <= UINT32_MAX) || d != std::floor(d)) {
    throw KmsError(v.Env(), "NATIVE_BAD_ARGUMENT",
                   "connectorId must be an integer from 1 to 2^32-1");
  }
  return static_cast<uint32_t>(d);
}

bool OptionalBool(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) {
    throw KmsError(o.Env(), "NATIVE_BAD_ARGUMENT",
                   std::string("options.") + key + " must be a boolean");
  }
  return v.As<Napi::Boolean>().Value();
}

}  // namespace

Napi::Function KmsDevice::Define(Napi::Env env) {
  return DefineClass(env, "KmsDevice",
                     {
                         InstanceMethod<&KmsDevice::Snapshot>("snapshot"),
                         InstanceMethod<&KmsDevice::RequestProtection>("requestProtection"),
                         InstanceMethod<&KmsDevice::ReleaseProtection>("releaseProtection"),
                         InstanceMethod<&KmsDevice::Watch>("watch"),
                         InstanceMethod<&KmsDevice::Ref>("ref"),
                         InstanceMethod<&KmsDevice::Unref>("unref"),
                         InstanceMethod<&KmsDevice::Close>("close"),
                         InstanceAccessor<&KmsDevice::Closed>("closed"),
                     });
}

KmsDevice::KmsDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KmsDevice>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw KmsError(env, "NATIVE_BAD_ARGUMENT", "options must be an object");
  const Napi::Object options = info[0].As<Napi::Object>();
  const Napi::Value kind = options.Get("backend");
  const std::string backend = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  if (backend == "libdrm") {
    std::string path;
    const Napi::Value p = options.Get("path");
    if (!p.IsUndefined()) {
      if (!p.IsString()) {
        throw KmsError(env, "NATIVE_BAD_ARGUMENT", "options.path must be a string");
      }
      path = p.As<Napi::String>().Utf8Value();
      if (path.empty() || path.size() > 4096 || path.find('\0') != std::string::npos) {
        throw KmsError(env, "NATIVE_BAD_ARGUMENT", "options.path must be a device path");
      }
    }
    const bool strict = OptionalBool(options, "strict");
    const bool dropMaster = OptionalBool(options, "dropMaster");
    if (strict && !LibdrmBuilt()) {
      throw KmsError(env, "KMS_UNAVAILABLE", "the addon was built without libdrm");
    }
    std::string error;
    backend_ = OpenLibdrmBackend(path, dropMaster, &error);
    if (!backend_) throw KmsError(env, "KMS_DEVICE_FAILED", error);
  } else if (backend == "scripted") {
    backend_ = MakeScriptedBackend(options.Get("scenario"));
  } else {
    throw KmsError(env, "NATIVE_BAD_ARGUMENT", "options.backend must be 'libdrm' or 'scripted'");
  }
  env_ = env;
  if (napi_add_env_cleanup_hook(env, &KmsDevice::CleanupHook, this) == napi_ok) hooked_ = true;
}

KmsDevice::~KmsDevice() {
  Shutdown();
  if (hooked_) napi_remove_env_cleanup_hook(env_, &KmsDevice::CleanupHook, this);
}

void KmsDevice::CleanupHook(void* self) {
  auto* device = static_cast<KmsDevice*>(self);
  device->hooked_ = false;
  device->Shutdown();
}

void KmsDevice::Shutdown() {
  if (backend_) {
    backend_->Shutdown();  // joins the threads: no Deliver() after this
    backend_.reset();
  }
  if (channel_) {
    channel_->Release();
    channel_.reset();
  }
}

Backend& KmsDevice::Open(Napi::Env env) {
  if (!backend_) throw KmsError(env, "NATIVE_CLOSED", "the KMS device was closed");
  return *backend_;
}

Napi::Value KmsDevice::Snapshot(const Napi::CallbackInfo& info) {
  return SnapshotToJs(info.Env(), BuildSnapshot(Open(info.Env())));
}

Napi::Value KmsDevice::RequestProtection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Backend& backend = Open(env);
  const uint32_t id = ConnectorIdArg(info[0]);
  const Napi::Value t = info[1];
  const double type = t.IsNumber() ? t.As<Napi::Number>().DoubleValue() : -1;
  if (type != 0 && type != 1) {
    throw KmsError(env, "NATIVE_BAD_ARGUMENT", "contentType must be 0 or 1");
  }
  return ResultToJs(env, kms::RequestProtection(backend, id, static_cast<int>(type)));
}

Napi::Value KmsDevice::ReleaseProtection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Backend& backend = Open(env);
  return ResultToJs(env, kms::ReleaseProtection(backend, ConnectorIdArg(info[0])));
}

Napi::Value KmsDevice::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Backend& backend = Open(env);
  if (watching_) throw KmsError(env, "NATIVE_BAD_ARGUMENT", "the device is already watching");
  if (!info[0].IsFunction()) throw KmsError(env, "NATIVE_BAD_ARGUMENT", "watch needs a callback");
  std::shared_ptr<EventChannel> channel =
      EventChannel::Open(env, info[0].As<Napi::Function>(), refed_);
  std::string error;
  const bool started = backend.StartEvents(
      [channel](const uint8_t* data, size_t length) { channel->Deliver(data, length); }, &error);
  if (!started) {
    channel->Release();
    throw KmsError(env, "UEVENT_FAILED", "cannot watch uevents: " + error);
  }
  channel_ = std::move(channel);
  watching_ = true;
  // While it watches, the device stays alive even when JS drops it; close() ends that.
  Napi::ObjectWrap<KmsDevice>::Ref();
  return env.Undefined();
}

Napi::Value KmsDevice::Ref(const Napi::CallbackInfo& info) {
  refed_ = true;
  if (channel_) channel_->SetRef(info.Env(), true);
  return info.Env().Undefined();
}

Napi::Value KmsDevice::Unref(const Napi::CallbackInfo& info) {
  refed_ = false;
  if (channel_) channel_->SetRef(info.Env(), false);
  return info.Env().Undefined();
}

Napi::Value KmsDevice::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  if (watching_) {
    watching_ = false;
    Napi::ObjectWrap<KmsDevice>::Unref();
  }
  return info.Env().Undefined();
}

Napi::Value KmsDevice::Closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !backend_);
}

Napi::Value KmsBuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libdrm", LibdrmBuilt());
  if (LibdrmBuilt() && LibdrmVersion()[0] != '\0') o.Set("libdrmVersion", LibdrmVersion());
  return o;
}

Napi::Value ParseUeventJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw KmsError(env, "NATIVE_BAD_ARGUMENT", "parseUevent needs a Uint8Array");
  }
  const auto raw = info[0].As<Napi::Uint8Array>();
  const std::optional<uevent::Uevent> event = uevent::ParseUevent(raw.Data(), raw.ElementLength());
  if (!event) return env.Null();
  return UeventToJs(env, *event);
}

// ---------------------------------------------------------------------------------------
// Built without libdrm: a libdrm backend that answers "unavailable" (and still watches).
#ifndef KW_HAVE_LIBDRM

namespace {

class NoLibdrmBackend final : public Backend {
 public:
  explicit NoLibdrmBackend(std::string path) : path_(std::move(path)) {}
  ~NoLibdrmBackend() override { Shutdown(); }
  const char* Kind() const override { return "libdrm"; }
  std::string Device() const override { return path_; }
  bool Available(std::string* reason) const override {
    *reason = "built without libdrm";
    return false;
  }
  bool IsMaster() override { return false; }
  bool Atomic() const override { return false; }
  std::unique_lock<std::recursive_mutex> Hold() override { return {}; }
  std::optional<Resources> GetResources(int* e) override { return Fail<Resources>(e); }
  std::optional<ConnectorInfo> GetConnectorCurrent(uint32_t, int* e) override {
    return Fail<ConnectorInfo>(e);
  }
  std::optional<EncoderInfo> GetEncoder(uint32_t, int* e) override { return Fail<EncoderInfo>(e); }
  std::optional<CrtcInfo> GetCrtc(uint32_t, int* e) override { return Fail<CrtcInfo>(e); }
  std::optional<std::vector<PropertyValue>> GetObjectProperties(uint32_t, uint32_t,
                                                                int* e) override {
    return Fail<std::vector<PropertyValue>>(e);
  }
  std::optional<PropertyInfo> GetProperty(uint32_t, int* e) override {
    return Fail<PropertyInfo>(e);
  }
  int AtomicCommit(const std::vector<AtomicSet>&) override { return ENOSYS; }
  ConnectorExtras Extras(uint32_t) override { return {}; }
  bool StartEvents(RawUeventSink sink, std::string* error) override {
    return watcher_.Start(std::move(sink), error);
  }
  void Shutdown() override { watcher_.Stop(); }

 private:
  template <typename T>
  static std::optional<T> Fail(int* error) {
    if (error) *error = ENOSYS;
    return std::nullopt;
  }
  std::string path_;
  uevent::NetlinkWatcher watcher_;
};

}  // namespace

std::unique_ptr<Backend> OpenLibdrmBackend(const std::string& path, bool, std::string*) {
  return std::make_unique<NoLibdrmBackend>(path);
}

bool LibdrmBuilt() { return false; }
const char* LibdrmVersion() { return ""; }

#endif  // KW_HAVE_LIBDRM

}  // namespace keywarden::kms
