#include "cenc-args.h"

#include <cmath>

namespace keywarden::cenc {

namespace {

bool IsTyped(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

template <typename T>
const T* TypedElements(Napi::Env env, const Napi::Value& v, napi_typedarray_type type,
                       const char* name, size_t* length) {
  if (!IsTyped(v, type)) {
    throw CodedError(env, "NATIVE_BAD_ARGUMENT",
                     std::string("batch.") + name + " has the wrong type");
  }
  auto array = v.As<Napi::TypedArrayOf<T>>();
  *length = array.ElementLength();
  return array.Data();
}

uint32_t PatternField(Napi::Env env, const Napi::Value& v, const char* name) {
  if (v.IsUndefined()) return 0;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 15) || d != std::floor(d)) {
    throw CodedError(env, "NATIVE_BAD_PATTERN",
                     std::string("batch.") + name + " must be an integer from 0 to 15");
  }
  return static_cast<uint32_t>(d);
}

Scheme SchemeField(Napi::Env env, const Napi::Value& v) {
  const std::string name = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  std::optional<Scheme> scheme = ParseScheme(name);
  if (!scheme) {
    throw CodedError(env, "MEDIA_UNKNOWN_SCHEME", "unknown protection scheme '" + name + "'");
  }
  return *scheme;
}

}  // namespace

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message,
                       int64_t sample) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  if (sample >= 0) error.Set("sample", Napi::Number::New(env, static_cast<double>(sample)));
  return error;
}

DataArg ParseData(const Napi::Value& value) {
  if (!IsTyped(value, napi_uint8_array)) {
    throw CodedError(value.Env(), "NATIVE_BAD_ARGUMENT", "data must be a Uint8Array or Buffer");
  }
  auto array = value.As<Napi::Uint8Array>();
  return DataArg{array, array.Data(), array.ElementLength()};
}

Key ParseKey(const Napi::Value& value) {
  const bool ok = IsTyped(value, napi_uint8_array) &&
                  value.As<Napi::Uint8Array>().ElementLength() == kKeyBytes;
  if (!ok) {
    throw CodedError(value.Env(), "NATIVE_BAD_KEY", "an AES-128 key is a 16-byte Uint8Array");
  }
  auto array = value.As<Napi::Uint8Array>();
  Key key;
  std::copy(array.Data(), array.Data() + kKeyBytes, key.begin());
  return key;
}

BatchView ParseBatch(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw CodedError(env, "NATIVE_BAD_ARGUMENT", "batch must be an object");
  Napi::Object batch = value.As<Napi::Object>();
  // Read every property before taking any pointer: a getter could run JS.
  const Napi::Value scheme = batch.Get("scheme"), crypt = batch.Get("cryptByteBlock"),
                    skip = batch.Get("skipByteBlock"), samples = batch.Get("samples"),
                    ivs = batch.Get("ivs"), subsamples = batch.Get("subsamples");
  BatchView view;
  view.scheme = SchemeField(env, scheme);
  view.pattern = Pattern{PatternField(env, crypt, "cryptByteBlock"),
                         PatternField(env, skip, "skipByteBlock")};
  view.samples =
      TypedElements<uint32_t>(env, samples, napi_uint32_array, "samples", &view.samplesLen);
  view.ivs = TypedElements<uint8_t>(env, ivs, napi_uint8_array, "ivs", &view.ivsLen);
  view.subsamples = TypedElements<uint32_t>(env, subsamples, napi_uint32_array, "subsamples",
                                            &view.subsamplesLen);
  return view;
}

MapSummary ValidateOrThrow(Napi::Env env, const BatchView& batch, size_t dataLen) {
  MapSummary summary;
  if (std::optional<MapError> err = ValidateBatch(batch, dataLen, &summary)) {
    throw CodedError(env, err->code, err->message, err->sample);
  }
  return summary;
}

OwnedBatch::OwnedBatch(const BatchView& source)
    : samples_(source.samples, source.samples + source.samplesLen),
      ivs_(source.ivs, source.ivs + source.ivsLen),
      subsamples_(source.subsamples, source.subsamples + source.subsamplesLen),
      view_(source) {
  view_.samples = samples_.data();
  view_.ivs = ivs_.data();
  view_.subsamples = subsamples_.data();
}

}  // namespace keywarden::cenc
