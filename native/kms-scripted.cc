#include "kms-scripted.h"

#include <errno.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "kms.h"
#include "uevent.h"

namespace keywarden::kms {

namespace {

using Clock = std::chrono::steady_clock;

// Limits shared with src/output/scenario.ts.
constexpr uint32_t kMaxObjectId = 1000000;
constexpr uint32_t kMaxConnectors = 64;
constexpr uint32_t kMaxTimeline = 10000;
constexpr uint32_t kMaxTypeIndex = 1000;
constexpr uint32_t kMaxMs = 86400000;      // 24 h
constexpr uint32_t kMaxAuthMs = 600000;    // 10 min
constexpr uint32_t kMaxModeSide = 16384;
constexpr size_t kMaxNameLength = 128;

constexpr char kDevpath[] = "/devices/platform/keywarden-scripted/drm/card0";

enum class Cp { kUndesired, kDesired, kEnabled };
enum class HdcpResult { kEnabled, kFail, kRevoked, kTampered };

constexpr const char* kConnectionNames[] = {"connected", "disconnected", "unknown"};
constexpr const char* kCpNames[] = {"undesired", "desired", "enabled"};
constexpr const char* kTypeNames[] = {"type0", "type1"};
constexpr const char* kSinkNames[] = {"unknown", "ok", "revoked", "tampered"};
constexpr const char* kResultNames[] = {"enabled", "fail", "revoked", "tampered"};

// The connector properties of the fake device, in id order. "CRTC_ID" only exists for
// atomic clients, "content type" only on HDMI, the last two only where the scenario
// gives them. Also listed in src/output/scenario.ts (uevent.property).
constexpr const char* kConnectorPropertyNames[] = {
    "EDID", "DPMS", "link-status", "non-desktop", "CRTC_ID", "content type",
    kContentProtection, kHdcpContentType};

struct Mode {
  uint32_t width = 0, height = 0;
  double refresh = 0;
};

struct Hdcp {
  uint32_t authMs = 0;
  HdcpResult result = HdcpResult::kEnabled;
};

struct Connector {
  uint32_t id = 0, type = 0, index = 0;
  Connection connection = Connection::kConnected;
  uint32_t crtc = 0;
  std::optional<Mode> mode;
  std::optional<Cp> cp;
  std::optional<uint32_t> contentType;  // 0 or 1
  std::optional<Hdcp> hdcp;
  SinkStatus sink = SinkStatus::kUnknown;
  bool cgmsA = false;
  // Run-time state.
  uint64_t authGeneration = 0;
  bool authPending = false;
};

struct Patch {
  std::optional<Connection> connection;
  std::optional<uint32_t> crtc;
  bool setMode = false;
  std::optional<Mode> mode;
  std::optional<Cp> cp;
  std::optional<uint32_t> contentType;
  std::optional<SinkStatus> sink;
  std::optional<bool> cgmsA;
  bool setHdcp = false;
  std::optional<Hdcp> hdcp;
};

struct UeventSpec {
  bool hotplug = true;
  bool connector = false;
  std::optional<std::string> property;
};

enum class StepKind { kSet, kAdd, kRemove };

struct Step {
  uint32_t atMs = 0;
  StepKind kind = StepKind::kSet;
  uint32_t connector = 0;
  Patch patch;
  Connector added;
  std::optional<UeventSpec> uevent;
};

struct PropertyQuirk {
  std::optional<uint32_t> id;
  std::vector<PropertyEnum> enums;  // empty: the kernel's values
};

struct Scenario {
  std::string name;
  bool master = true;
  bool atomic = true;
  bool netlink = true;
  std::vector<Connector> connectors;
  std::vector<Step> timeline;
  PropertyQuirk cpQuirk, typeQuirk;
};

// ---------------------------------------------------------------------------------------
// Reading the scenario object, defensively.

class Reader {
 public:
  explicit Reader(Napi::Env env) : env_(env) {}

  [[noreturn]] void Fail(const std::string& path, const std::string& what) const {
    Napi::Error error = KmsError(env_, "KMS_SCENARIO_INVALID", "scenario " + path + ": " + what);
    error.Set("path", Napi::String::New(env_, path));
    throw error;
  }

  static bool Absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

  Napi::Object Object(const Napi::Value& v, const std::string& path) const {
    if (!v.IsObject() || v.IsArray() || v.IsFunction()) Fail(path, "must be an object");
    return v.As<Napi::Object>();
  }

  Napi::Array Array(const Napi::Value& v, const std::string& path, uint32_t max) const {
    if (!v.IsArray()) Fail(path, "must be an array");
    Napi::Array array = v.As<Napi::Array>();
    if (array.Length() > max) Fail(path, "has more than " + std::to_string(max) + " entries");
    return array;
  }

  uint64_t Integer(const Napi::Value& v, const std::string& path, uint64_t min,
                   uint64_t max) const {
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || d != std::floor(d)) {
      Fail(path, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return static_cast<uint64_t>(d);
  }

  uint32_t U32(const Napi::Value& v, const std::string& path, uint32_t min, uint32_t max) const {
    return static_cast<uint32_t>(Integer(v, path, min, max));
  }

  double Number(const Napi::Value& v, const std::string& path, double min, double max) const {
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d >= min && d <= max)) {
      Fail(path, "must be a number from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return d;
  }

  std::string String(const Napi::Value& v, const std::string& path, size_t maxLength) const {
    if (!v.IsString()) Fail(path, "must be a string");
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.empty() || s.size() > maxLength) {
      Fail(path, "must be 1 to " + std::to_string(maxLength) + " bytes long");
    }
    return s;
  }

  bool Bool(const Napi::Value& v, const std::string& path) const {
    if (!v.IsBoolean()) Fail(path, "must be true or false");
    return v.As<Napi::Boolean>().Value();
  }

  template <size_t N>
  size_t Choice(const Napi::Value& v, const std::string& path,
                const char* const (&names)[N]) const {
    const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
    for (size_t i = 0; i < N; ++i) {
      if (s == names[i]) return i;
    }
    std::string list;
    for (size_t i = 0; i < N; ++i) list += (i ? ", " : "") + std::string(names[i]);
    Fail(path, "must be one of " + list);
  }

 private:
  Napi::Env env_;
};

Mode ReadMode(const Reader& r, const Napi::Value& v, const std::string& path) {
  Napi::Object o = r.Object(v, path);
  Mode m;
  m.width = r.U32(o.Get("width"), path + ".width", 1, kMaxModeSide);
  m.height = r.U32(o.Get("height"), path + ".height", 1, kMaxModeSide);
  m.refresh = r.Number(o.Get("refresh"), path + ".refresh", 1, 1000);
  return m;
}

Hdcp ReadHdcp(const Reader& r, const Napi::Value& v, const std::string& path) {
  Napi::Object o = r.Object(v, path);
  Hdcp h;
  h.authMs = r.U32(o.Get("authMs"), path + ".authMs", 0, kMaxAuthMs);
  const Napi::Value result = o.Get("result");
  if (!Reader::Absent(result)) {
    h.result = static_cast<HdcpResult>(r.Choice(result, path + ".result", kResultNames));
  }
  return h;
}

// The fields a connector and a `set` patch share.
Patch ReadFields(const Reader& r, const Napi::Object& o, const std::string& path) {
  Patch p;
  Napi::Value v = o.Get("connection");
  if (!Reader::Absent(v)) {
    p.connection =
        static_cast<Connection>(r.Choice(v, path + ".connection", kConnectionNames) + 1);
  }
  v = o.Get("crtc");
  if (!Reader::Absent(v)) p.crtc = r.U32(v, path + ".crtc", 0, kMaxObjectId);
  v = o.Get("mode");
  if (o.Has("mode")) {
    p.setMode = true;
    if (!Reader::Absent(v)) p.mode = ReadMode(r, v, path + ".mode");
  }
  v = o.Get("contentProtection");
  if (!Reader::Absent(v)) {
    p.cp = static_cast<Cp>(r.Choice(v, path + ".contentProtection", kCpNames));
  }
  v = o.Get("hdcpContentType");
  if (!Reader::Absent(v)) {
    p.contentType = static_cast<uint32_t>(r.Choice(v, path + ".hdcpContentType", kTypeNames));
  }
  v = o.Get("sink");
  if (!Reader::Absent(v)) p.sink = static_cast<SinkStatus>(r.Choice(v, path + ".sink", kSinkNames));
  v = o.Get("cgmsA");
  if (!Reader::Absent(v)) p.cgmsA = r.Bool(v, path + ".cgmsA");
  v = o.Get("hdcp");
  if (o.Has("hdcp")) {
    p.setHdcp = true;
    if (!Reader::Absent(v)) p.hdcp = ReadHdcp(r, v, path + ".hdcp");
  }
  return p;
}

void ApplyPatch(Connector& c, const Patch& p) {
  if (p.connection) c.connection = *p.connection;
  if (p.crtc) c.crtc = *p.crtc;
  if (p.setMode) c.mode = p.mode;
  if (p.cp) c.cp = p.cp;
  if (p.contentType) c.contentType = p.contentType;
  if (p.sink) c.sink = *p.sink;
  if (p.cgmsA) c.cgmsA = *p.cgmsA;
  if (p.setHdcp) c.hdcp = p.hdcp;
}

Connector ReadConnector(const Reader& r, const Napi::Value& v, const std::string& path,
                        const std::vector<Connector>& live) {
  Napi::Object o = r.Object(v, path);
  Connector c;
  c.id = r.U32(o.Get("id"), path + ".id", 1, kMaxObjectId);
  const std::string type = r.String(o.Get("type"), path + ".type", 32);
  const std::optional<uint32_t> typeValue = ConnectorTypeFromName(type);
  if (!typeValue) r.Fail(path + ".type", "unknown connector type '" + type + "'");
  c.type = *typeValue;
  const Napi::Value index = o.Get("index");
  if (Reader::Absent(index)) {
    // The kernel numbers each type from 1.
    uint32_t next = 1;
    for (const Connector& other : live) {
      if (other.type == c.type) next = std::max(next, other.index + 1);
    }
    c.index = next;
  } else {
    c.index = r.U32(index, path + ".index", 1, kMaxTypeIndex);
  }
  const Patch fields = ReadFields(r, o, path);
  ApplyPatch(c, fields);
  if (c.hdcp && !c.cp) r.Fail(path + ".hdcp", "needs contentProtection (the property)");
  for (const Connector& other : live) {
    if (other.id == c.id) r.Fail(path + ".id", "duplicate connector id " + std::to_string(c.id));
    if (other.type == c.type && other.index == c.index) {
      r.Fail(path + ".index", "duplicate connector " + type + "-" + std::to_string(c.index));
    }
  }
  return c;
}

std::optional<PropertyEnum> FindEnum(const std::vector<PropertyEnum>& enums,
                                     const std::string& name) {
  for (const PropertyEnum& e : enums) {
    if (e.name == name) return e;
  }
  return std::nullopt;
}

PropertyQuirk ReadQuirk(const Reader& r, const Napi::Object& properties, const char* name,
                        const std::vector<const char*>& enumNames) {
  const std::string path = std::string("properties[\"") + name + "\"]";
  const Napi::Value v = properties.Get(name);
  PropertyQuirk q;
  if (Reader::Absent(v)) return q;
  Napi::Object o = r.Object(v, path);
  const Napi::Value id = o.Get("id");
  if (!Reader::Absent(id)) q.id = r.U32(id, path + ".id", 1, kMaxObjectId);
  const Napi::Value enums = o.Get("enums");
  if (!Reader::Absent(enums)) {
    Napi::Object e = r.Object(enums, path + ".enums");
    std::set<uint64_t> values;
    for (const char* enumName : enumNames) {
      const uint64_t value =
          r.Integer(e.Get(enumName), path + ".enums[\"" + enumName + "\"]", 0, UINT32_MAX);
      if (!values.insert(value).second) {
        r.Fail(path + ".enums", "two names share the value " + std::to_string(value));
      }
      q.enums.push_back({value, enumName});
    }
  }
  return q;
}

std::optional<UeventSpec> ReadUeventSpec(const Reader& r, const Napi::Value& v,
                                         const std::string& path) {
  UeventSpec spec;
  if (v.IsUndefined()) return spec;
  if (v.IsNull() || (v.IsBoolean() && !v.As<Napi::Boolean>().Value())) return std::nullopt;
  Napi::Object o = r.Object(v, path);
  Napi::Value f = o.Get("hotplug");
  if (!Reader::Absent(f)) spec.hotplug = r.Bool(f, path + ".hotplug");
  f = o.Get("connector");
  if (!Reader::Absent(f)) spec.connector = r.Bool(f, path + ".connector");
  f = o.Get("property");
  if (!Reader::Absent(f)) {
    const size_t i = r.Choice(f, path + ".property", kConnectorPropertyNames);
    spec.property = kConnectorPropertyNames[i];
  }
  return spec;
}

Scenario ReadScenario(Napi::Env env, const Napi::Value& value) {
  const Reader r(env);
  Napi::Object o = r.Object(value, "(root)");
  Scenario s;
  s.name = r.String(o.Get("name"), "name", kMaxNameLength);
  Napi::Value v = o.Get("master");
  if (!Reader::Absent(v)) s.master = r.Bool(v, "master");
  v = o.Get("atomic");
  if (!Reader::Absent(v)) s.atomic = r.Bool(v, "atomic");
  v = o.Get("netlink");
  if (!Reader::Absent(v)) s.netlink = r.Bool(v, "netlink");

  v = o.Get("properties");
  if (!Reader::Absent(v)) {
    Napi::Object props = r.Object(v, "properties");
    s.cpQuirk = ReadQuirk(r, props, kContentProtection, {kCpUndesired, kCpDesired, kCpEnabled});
    s.typeQuirk = ReadQuirk(r, props, kHdcpContentType, {kHdcpType0, kHdcpType1});
    if (s.cpQuirk.id && s.typeQuirk.id && *s.cpQuirk.id == *s.typeQuirk.id) {
      r.Fail("properties", "two properties share the id " + std::to_string(*s.cpQuirk.id));
    }
  }

  Napi::Array connectors = r.Array(o.Get("connectors"), "connectors", kMaxConnectors);
  for (uint32_t i = 0; i < connectors.Length(); ++i) {
    const std::string path = "connectors[" + std::to_string(i) + "]";
    s.connectors.push_back(ReadConnector(r, connectors.Get(i), path, s.connectors));
  }

  // The timeline is replayed here on a copy of the connectors, so that a step naming a
  // connector that does not exist at that time, or a property it lacks, is refused now.
  std::vector<Connector> live = s.connectors;
  v = o.Get("timeline");
  if (!Reader::Absent(v)) {
    Napi::Array timeline = r.Array(v, "timeline", kMaxTimeline);
    uint32_t previous = 0;
    for (uint32_t i = 0; i < timeline.Length(); ++i) {
      const std::string path = "timeline[" + std::to_string(i) + "]";
      Napi::Object so = r.Object(timeline.Get(i), path);
      Step step;
      step.atMs = r.U32(so.Get("atMs"), path + ".atMs", 0, kMaxMs);
      if (step.atMs < previous) r.Fail(path + ".atMs", "steps must be in time order");
      previous = step.atMs;
      const bool hasSet = !Reader::Absent(so.Get("set"));
      const bool hasAdd = !Reader::Absent(so.Get("add"));
      const bool hasRemove = !Reader::Absent(so.Get("remove"));
      if (hasSet + hasAdd + hasRemove != 1) r.Fail(path, "needs exactly one of set, add, remove");
      if (hasAdd) {
        step.kind = StepKind::kAdd;
        step.added = ReadConnector(r, so.Get("add"), path + ".add", live);
        step.connector = step.added.id;
        live.push_back(step.added);
      } else {
        const std::string key = hasSet ? ".connector" : ".remove";
        step.connector =
            r.U32(so.Get(hasSet ? "connector" : "remove"), path + key, 1, kMaxObjectId);
        auto it = std::find_if(live.begin(), live.end(),
                               [&](const Connector& c) { return c.id == step.connector; });
        if (it == live.end()) {
          r.Fail(path + key, "no connector " + std::to_string(step.connector) + " at that time");
        }
        if (hasSet) {
          step.kind = StepKind::kSet;
          step.patch = ReadFields(r, r.Object(so.Get("set"), path + ".set"), path + ".set");
          if (step.patch.cp && !it->cp) {
            r.Fail(path + ".set.contentProtection",
                   "the connector has no Content Protection property");
          }
          if (step.patch.contentType && !it->contentType) {
            r.Fail(path + ".set.hdcpContentType",
                   "the connector has no HDCP Content Type property");
          }
          ApplyPatch(*it, step.patch);
          if (it->hdcp && !it->cp) {
            r.Fail(path + ".set.hdcp", "needs contentProtection (the property)");
          }
        } else {
          step.kind = StepKind::kRemove;
          live.erase(it);
        }
      }
      step.uevent = ReadUeventSpec(r, so.Get("uevent"), path + ".uevent");
      s.timeline.push_back(std::move(step));
    }
  }

  // KMS object ids share one space: connectors, CRTCs and properties must not collide.
  std::map<uint32_t, std::string> ids;
  const auto claim = [&](uint32_t id, const std::string& what, const std::string& path) {
    auto [it, fresh] = ids.emplace(id, what);
    if (!fresh && it->second != what) {
      r.Fail(path, "id " + std::to_string(id) + " is used both by " + it->second + " and " + what);
    }
  };
  const auto claimConnector = [&](const Connector& c, const std::string& path) {
    claim(c.id, "connector " + std::to_string(c.id), path + ".id");
  };
  const auto claimCrtc = [&](uint32_t crtc, const std::string& path) {
    if (crtc != 0) claim(crtc, "a CRTC", path);
  };
  for (size_t i = 0; i < s.connectors.size(); ++i) {
    const std::string path = "connectors[" + std::to_string(i) + "]";
    claimConnector(s.connectors[i], path);
    claimCrtc(s.connectors[i].crtc, path + ".crtc");
  }
  for (size_t i = 0; i < s.timeline.size(); ++i) {
    const Step& step = s.timeline[i];
    const std::string path = "timeline[" + std::to_string(i) + "]";
    if (step.kind == StepKind::kAdd) {
      claimConnector(step.added, path + ".add");
      claimCrtc(step.added.crtc, path + ".add.crtc");
    } else if (step.kind == StepKind::kSet && step.patch.crtc) {
      claimCrtc(*step.patch.crtc, path + ".set.crtc");
    }
  }
  if (s.cpQuirk.id) claim(*s.cpQuirk.id, "a property", "properties[\"Content Protection\"].id");
  if (s.typeQuirk.id) claim(*s.typeQuirk.id, "a property", "properties[\"HDCP Content Type\"].id");
  return s;
}

// ---------------------------------------------------------------------------------------
// The fake device.

class ScriptedBackend final : public Backend {
 public:
  explicit ScriptedBackend(Scenario scenario) : scenario_(std::move(scenario)) {
    connectors_ = scenario_.connectors;
    // Every id the scenario names, then the objects the fake allocates above them.
    uint32_t top = 0;
    std::set<uint32_t> connectorIds;
    for (const Connector& c : connectors_) {
      connectorIds.insert(c.id);
      if (c.crtc) crtcs_.insert(c.crtc);
    }
    for (const Step& step : scenario_.timeline) {
      if (step.kind == StepKind::kAdd) {
        connectorIds.insert(step.added.id);
        if (step.added.crtc) crtcs_.insert(step.added.crtc);
      } else if (step.kind == StepKind::kSet && step.patch.crtc && *step.patch.crtc) {
        crtcs_.insert(*step.patch.crtc);
      }
    }
    std::set<uint32_t> reserved(connectorIds.begin(), connectorIds.end());
    reserved.insert(crtcs_.begin(), crtcs_.end());
    if (scenario_.cpQuirk.id) reserved.insert(*scenario_.cpQuirk.id);
    if (scenario_.typeQuirk.id) reserved.insert(*scenario_.typeQuirk.id);
    if (!reserved.empty()) top = *reserved.rbegin();
    uint32_t next = top + 1;
    for (uint32_t id : connectorIds) encoders_[id] = next++;

    const auto add = [&](const char* name, uint32_t flags, std::vector<PropertyEnum> enums,
                         const PropertyQuirk* quirk = nullptr) {
      PropertyInfo p;
      p.id = quirk && quirk->id ? *quirk->id : next++;
      p.name = name;
      p.flags = flags;
      p.enums = quirk && !quirk->enums.empty() ? quirk->enums : std::move(enums);
      properties_[p.id] = p;
      return p.id;
    };
    edid_ = add("EDID", kPropBlob | kPropImmutable, {});
    dpms_ = add("DPMS", kPropEnum, {{0, "On"}, {1, "Standby"}, {2, "Suspend"}, {3, "Off"}});
    linkStatus_ = add("link-status", kPropEnum, {{0, "Good"}, {1, "Bad"}});
    nonDesktop_ = add("non-desktop", kPropRange | kPropImmutable, {});
    crtcIdProp_ = add("CRTC_ID", kPropObject | kPropAtomic, {});
    contentTypeProp_ =
        add("content type", kPropEnum,
            {{0, "No Data"}, {1, "Graphics"}, {2, "Photo"}, {3, "Cinema"}, {4, "Game"}});
    cpProp_ = add(kContentProtection, kPropEnum,
                  {{0, kCpUndesired}, {1, kCpDesired}, {2, kCpEnabled}}, &scenario_.cpQuirk);
    hdcpTypeProp_ = add(kHdcpContentType, kPropEnum, {{0, kHdcpType0}, {1, kHdcpType1}},
                        &scenario_.typeQuirk);
    activeProp_ = add("ACTIVE", kPropRange | kPropAtomic, {});
    modeIdProp_ = add("MODE_ID", kPropBlob | kPropAtomic, {});
  }

  ~ScriptedBackend() override { Shutdown(); }

  const char* Kind() const override { return "scripted"; }
  std::string Device() const override { return "scripted:" + scenario_.name; }
  bool Available(std::string*) const override { return true; }
  bool IsMaster() override { return scenario_.master; }
  bool Atomic() const override { return scenario_.atomic; }
  std::unique_lock<std::recursive_mutex> Hold() override {
    return std::unique_lock<std::recursive_mutex>(mu_);
  }

  std::optional<Resources> GetResources(int*) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Resources res;
    for (const Connector& c : connectors_) {
      res.connectors.push_back(c.id);
      res.encoders.push_back(encoders_.at(c.id));
    }
    res.crtcs.assign(crtcs_.begin(), crtcs_.end());
    return res;
  }

  std::optional<ConnectorInfo> GetConnectorCurrent(uint32_t id, int* error) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    const Connector* c = Find(id);
    if (!c) return Fail<ConnectorInfo>(error, ENOENT);
    ConnectorInfo info;
    info.id = c->id;
    info.encoderId = c->crtc ? encoders_.at(c->id) : 0;
    info.type = c->type;
    info.typeIndex = c->index;
    info.connection = c->connection;
    return info;
  }

  std::optional<EncoderInfo> GetEncoder(uint32_t id, int* error) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    for (const Connector& c : connectors_) {
      if (encoders_.at(c.id) == id) return EncoderInfo{id, c.crtc};
    }
    return Fail<EncoderInfo>(error, ENOENT);
  }

  std::optional<CrtcInfo> GetCrtc(uint32_t id, int* error) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (crtcs_.count(id) == 0) return Fail<CrtcInfo>(error, ENOENT);
    CrtcInfo info;
    info.id = id;
    if (const Mode* mode = CrtcMode(id)) {
      info.modeValid = true;
      // CEA-like blanking, and the pixel clock that gives the scenario's refresh rate.
      info.mode.hdisplay = static_cast<uint16_t>(mode->width);
      info.mode.vdisplay = static_cast<uint16_t>(mode->height);
      info.mode.htotal = static_cast<uint16_t>(mode->width + 280);
      info.mode.vtotal = static_cast<uint16_t>(mode->height + 45);
      info.mode.clock = static_cast<uint32_t>(std::llround(
          static_cast<double>(info.mode.htotal) * info.mode.vtotal * mode->refresh / 1000.0));
      info.mode.vrefresh = static_cast<uint32_t>(std::llround(mode->refresh));
    }
    return info;
  }

  std::optional<std::vector<PropertyValue>> GetObjectProperties(uint32_t objectId,
                                                                uint32_t objectType,
                                                                int* error) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    std::vector<PropertyValue> values;
    if (objectType == kObjectConnector) {
      const Connector* c = Find(objectId);
      if (!c) return Fail<std::vector<PropertyValue>>(error, ENOENT);
      values.push_back({edid_, 0});
      values.push_back({dpms_, 0});
      values.push_back({linkStatus_, 0});
      values.push_back({nonDesktop_, 0});
      if (scenario_.atomic) values.push_back({crtcIdProp_, c->crtc});
      if (c->type == 11 || c->type == 12) values.push_back({contentTypeProp_, 0});  // HDMI
      if (c->cp) values.push_back({cpProp_, CpValue(*c->cp)});
      if (c->contentType) values.push_back({hdcpTypeProp_, TypeValue(*c->contentType)});
    } else if (objectType == kObjectCrtc) {
      if (crtcs_.count(objectId) == 0) return Fail<std::vector<PropertyValue>>(error, ENOENT);
      if (scenario_.atomic) {
        values.push_back({activeProp_, CrtcMode(objectId) ? 1u : 0u});
        values.push_back({modeIdProp_, 0});
      }
    } else {
      return Fail<std::vector<PropertyValue>>(error, EINVAL);
    }
    // The kernel lists properties in attachment order; ids decide it here, so that a
    // scenario that moves the ids moves the properties too.
    std::sort(values.begin(), values.end(),
              [](const PropertyValue& a, const PropertyValue& b) { return a.id < b.id; });
    return values;
  }

  std::optional<PropertyInfo> GetProperty(uint32_t id, int* error) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto it = properties_.find(id);
    if (it == properties_.end()) return Fail<PropertyInfo>(error, ENOENT);
    return it->second;
  }

  // The kernel's rules (drm_atomic_uapi.c, drm_hdcp.c): only master commits; userspace
  // cannot set Enabled; Desired on an Enabled connector keeps Enabled unless the content
  // type changes; a content type change re-authenticates.
  int AtomicCommit(const std::vector<AtomicSet>& sets) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (!scenario_.atomic) return EOPNOTSUPP;
    if (!scenario_.master) return EACCES;
    struct Change {
      Connector* connector;
      std::optional<Cp> cp;
      std::optional<uint32_t> type;
    };
    std::vector<Change> changes;
    for (const AtomicSet& set : sets) {
      Connector* c = Find(set.objectId);
      if (!c) return EINVAL;
      auto change = std::find_if(changes.begin(), changes.end(),
                                 [&](const Change& ch) { return ch.connector == c; });
      if (change == changes.end()) change = changes.insert(changes.end(), Change{c, {}, {}});
      if (set.propertyId == cpProp_ && c->cp) {
        const std::optional<std::string> name = EnumName(cpProp_, set.value);
        if (!name || *name == kCpEnabled) return EINVAL;
        change->cp = *name == kCpDesired ? Cp::kDesired : Cp::kUndesired;
      } else if (set.propertyId == hdcpTypeProp_ && c->contentType) {
        const std::optional<std::string> name = EnumName(hdcpTypeProp_, set.value);
        if (!name) return EINVAL;
        change->type = *name == kHdcpType1 ? 1u : 0u;
      } else {
        return EINVAL;  // not attached, or not writable in this fake
      }
    }
    for (const Change& ch : changes) {
      Connector& c = *ch.connector;
      const Cp oldCp = c.cp.value_or(Cp::kUndesired);
      const bool typeChanged = ch.type && c.contentType && *ch.type != *c.contentType;
      Cp cp = ch.cp.value_or(oldCp);
      if (cp == Cp::kDesired && oldCp == Cp::kEnabled && !typeChanged) cp = Cp::kEnabled;
      if (typeChanged && cp != Cp::kUndesired) cp = Cp::kDesired;
      if (ch.type) c.contentType = ch.type;
      if (c.cp) c.cp = cp;
      if (cp != Cp::kDesired) {
        CancelAuth(c);
      } else if (typeChanged || !c.authPending) {
        CancelAuth(c);
        StartAuth(c);
      }
    }
    return 0;
  }

  ConnectorExtras Extras(uint32_t connectorId) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    const Connector* c = Find(connectorId);
    if (!c) return {};
    return {c->sink, c->cgmsA};
  }

  bool StartEvents(RawUeventSink sink, std::string* error) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (!scenario_.netlink) {
      *error =
          "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT): refused by the scenario (netlink: false)";
      return false;
    }
    if (sink_) {
      *error = "the uevent watcher was already started";
      return false;
    }
    sink_ = std::move(sink);
    const Clock::time_point start = Clock::now();
    for (size_t i = 0; i < scenario_.timeline.size(); ++i) {
      Job job;
      job.step = i;
      jobs_.emplace(start + std::chrono::milliseconds(scenario_.timeline[i].atMs), job);
    }
    if (!jobs_.empty()) EnsureThread();
    wake_.notify_all();
    return true;
  }

  void Shutdown() override {
    {
      std::lock_guard<std::recursive_mutex> lock(mu_);
      stopping_ = true;
      wake_.notify_all();
    }
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

 private:
  struct Job {
    bool auth = false;
    size_t step = 0;
    uint32_t connector = 0;
    uint64_t generation = 0;
  };

  template <typename T>
  static std::optional<T> Fail(int* error, int code) {
    if (error) *error = code;
    return std::nullopt;
  }

  Connector* Find(uint32_t id) {
    for (Connector& c : connectors_) {
      if (c.id == id) return &c;
    }
    return nullptr;
  }

  // The mode of a CRTC: that of the first connector driving it with a mode.
  const Mode* CrtcMode(uint32_t crtc) const {
    for (const Connector& c : connectors_) {
      if (c.crtc == crtc && c.mode) return &*c.mode;
    }
    return nullptr;
  }

  static bool LinkUp(const Connector& c) {
    return c.connection == Connection::kConnected && c.crtc != 0 && c.mode.has_value();
  }

  std::optional<std::string> EnumName(uint32_t prop, uint64_t value) const {
    for (const PropertyEnum& e : properties_.at(prop).enums) {
      if (e.value == value) return e.name;
    }
    return std::nullopt;
  }

  uint64_t EnumValue(uint32_t prop, const char* name) const {
    const std::optional<PropertyEnum> e = FindEnum(properties_.at(prop).enums, name);
    return e ? e->value : 0;
  }

  uint64_t CpValue(Cp cp) const {
    return EnumValue(cpProp_, cp == Cp::kEnabled   ? kCpEnabled
                              : cp == Cp::kDesired ? kCpDesired
                                                   : kCpUndesired);
  }

  uint64_t TypeValue(uint32_t type) const {
    return EnumValue(hdcpTypeProp_, type == 1 ? kHdcpType1 : kHdcpType0);
  }

  void CancelAuth(Connector& c) {
    c.authGeneration++;
    c.authPending = false;
  }

  // A driver starts HDCP authentication on an enabled link only.
  void StartAuth(Connector& c) {
    if (!c.hdcp || !LinkUp(c) || stopping_) return;
    Job job;
    job.auth = true;
    job.connector = c.id;
    job.generation = c.authGeneration;
    c.authPending = true;
    jobs_.emplace(Clock::now() + std::chrono::milliseconds(c.hdcp->authMs), job);
    EnsureThread();
    wake_.notify_all();
  }

  void EnsureThread() {
    if (thread_.joinable() || stopping_) return;
    thread_ = std::thread(&ScriptedBackend::Run, this);
  }

  uevent::Uevent Event(bool hotplug, std::optional<uint32_t> connector,
                       std::optional<uint32_t> property) {
    uevent::Uevent ev;
    ev.action = "change";
    ev.devpath = kDevpath;
    ev.subsystem = "drm";
    ev.hotplug = hotplug;
    ev.connector = connector;
    ev.property = property;
    ev.seqnum = ++seqnum_;
    return ev;
  }

  std::optional<uint32_t> PropertyIdByName(const std::string& name) const {
    for (const auto& [id, p] : properties_) {
      if (p.name == name) return id;
    }
    return std::nullopt;
  }

  std::optional<uevent::Uevent> ApplyStep(const Step& step) {
    uint32_t subject = step.connector;
    if (step.kind == StepKind::kAdd) {
      if (Find(step.added.id)) return std::nullopt;
      connectors_.push_back(step.added);
    } else if (step.kind == StepKind::kRemove) {
      auto it = std::find_if(connectors_.begin(), connectors_.end(),
                             [&](const Connector& c) { return c.id == step.connector; });
      if (it == connectors_.end()) return std::nullopt;
      connectors_.erase(it);
    } else {
      Connector* c = Find(step.connector);
      if (!c) return std::nullopt;
      const bool wasEnabled = c->cp == Cp::kEnabled;
      ApplyPatch(*c, step.patch);
      // A driver drops an enabled link to Desired when the link goes (drm_hdcp).
      if (!LinkUp(*c)) {
        CancelAuth(*c);
        if (wasEnabled && c->cp == Cp::kEnabled && !step.patch.cp) c->cp = Cp::kDesired;
      }
    }
    if (!step.uevent) return std::nullopt;
    const UeventSpec& spec = *step.uevent;
    std::optional<uint32_t> property;
    if (spec.property) property = PropertyIdByName(*spec.property);
    std::optional<uint32_t> connector;
    if (spec.connector || property) connector = subject;
    return Event(spec.hotplug, connector, property);
  }

  std::optional<uevent::Uevent> ApplyAuth(const Job& job) {
    Connector* c = Find(job.connector);
    if (!c || c->authGeneration != job.generation || !c->authPending) return std::nullopt;
    c->authPending = false;
    if (c->cp != Cp::kDesired || !c->hdcp || !LinkUp(*c)) return std::nullopt;
    switch (c->hdcp->result) {
      case HdcpResult::kEnabled:
        c->cp = Cp::kEnabled;
        break;
      case HdcpResult::kFail:
        return std::nullopt;  // stays Desired, as when a sink never answers
      case HdcpResult::kRevoked:
        c->sink = SinkStatus::kRevoked;
        break;
      case HdcpResult::kTampered:
        c->sink = SinkStatus::kTampered;
        break;
    }
    // drm_hdcp_update_content_protection: HOTPLUG=1 CONNECTOR= PROPERTY=.
    return Event(true, c->id, cpProp_);
  }

  void Run() {
    std::unique_lock<std::recursive_mutex> lock(mu_);
    while (!stopping_) {
      if (jobs_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto first = jobs_.begin();
      if (Clock::now() < first->first) {
        const Clock::time_point when = first->first;
        wake_.wait_until(lock, when);
        continue;
      }
      const Job job = first->second;
      jobs_.erase(first);
      std::optional<uevent::Uevent> event =
          job.auth ? ApplyAuth(job) : ApplyStep(scenario_.timeline.at(job.step));
      if (!event || !sink_) continue;
      // The same bytes the kernel sends, delivered without the lock held.
      const std::string raw = uevent::BuildUevent(*event);
      RawUeventSink sink = sink_;
      lock.unlock();
      sink(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
      lock.lock();
    }
  }

  Scenario scenario_;
  std::recursive_mutex mu_;
  std::condition_variable_any wake_;
  std::vector<Connector> connectors_;
  std::set<uint32_t> crtcs_;
  std::map<uint32_t, uint32_t> encoders_;  // connector id -> encoder id
  std::map<uint32_t, PropertyInfo> properties_;
  uint32_t edid_ = 0, dpms_ = 0, linkStatus_ = 0, nonDesktop_ = 0, crtcIdProp_ = 0;
  uint32_t contentTypeProp_ = 0, cpProp_ = 0, hdcpTypeProp_ = 0, activeProp_ = 0, modeIdProp_ = 0;
  std::multimap<Clock::time_point, Job> jobs_;
  RawUeventSink sink_;
  uint64_t seqnum_ = 4000;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Backend> MakeScriptedBackend(const Napi::Value& scenario) {
  return std::make_unique<ScriptedBackend>(ReadScenario(scenario.Env(), scenario));
}

}  // namespace keywarden::kms
