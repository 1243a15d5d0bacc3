// The scripted KMS backend: a fake libdrm (in the spirit of KWin's autotests/drm mock)
// that answers the libdrm-shaped calls of kms-backend.h from a scenario, so that the
// shared code of kms.cc runs in CI without a GPU. It models what the kernel keeps:
// connector, encoder and CRTC objects, property objects with ids and enum entries
// ("Content Protection", "HDCP Content Type" and decoys), DRM master, atomic commits with
// the kernel's HDCP rules, and uevents in the kernel's byte format.
//
// The scenario is the validated object of src/output/scenario.ts (format documented
// there and in docs/kms.md); it is checked again here, defensively, and a bad one throws
// a JS Error with code KMS_SCENARIO_INVALID and `path`.
#ifndef KEYWARDEN_NATIVE_KMS_SCRIPTED_H_
#define KEYWARDEN_NATIVE_KMS_SCRIPTED_H_

#include <napi.h>

#include <memory>

#include "kms-backend.h"

namespace keywarden::kms {

std::unique_ptr<Backend> MakeScriptedBackend(const Napi::Value& scenario);

}  // namespace keywarden::kms

#endif  // KEYWARDEN_NATIVE_KMS_SCRIPTED_H_
