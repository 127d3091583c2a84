// What tch does not expose: a TorchScript method's signature (argument
// names and types, return types and named-tuple fields), and inference mode.
#include <torch/script.h>
#include <torch/headeronly/version.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

void quote(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  out += '"';
}

void type_json(std::string& out, const c10::TypePtr& t) {
  out += "{\"type\":";
  quote(out, t->annotation_str());
  if (auto tuple = t->cast<c10::TupleType>()) {
    auto names = tuple->names();
    if (tuple->schema() && names) {
      out += ",\"fields\":[";
      bool first = true;
      for (const auto& n : *names) {
        if (!first) out += ',';
        first = false;
        quote(out, std::string(n));
      }
      out += ']';
    }
  }
  out += '}';
}

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

}  // namespace

extern "C" {

// The signature of `method` on a loaded module as JSON
// ({"args":[{"name","type"}],"returns":[{"type","fields"?}]}), or null with
// the reason in *err. Free either string with oxt_free.
char* oxt_method_schema(void* module, const char* method, char** err) {
  *err = nullptr;
  try {
    auto* m = static_cast<torch::jit::script::Module*>(module);
    auto found = m->find_method(method);
    if (!found) {
      *err = dup(std::string("the module has no method '") + method + "'");
      return nullptr;
    }
    const auto& schema = found->function().getSchema();
    std::string out = "{\"args\":[";
    bool first = true;
    for (const auto& a : schema.arguments()) {
      if (a.name() == "self") continue;
      if (!first) out += ',';
      first = false;
      out += "{\"name\":";
      quote(out, a.name());
      out += ",\"type\":";
      quote(out, a.type()->annotation_str());
      out += ",\"optional\":";
      out += a.default_value().has_value() ? "true" : "false";
      out += '}';
    }
    out += "],\"returns\":[";
    first = true;
    for (const auto& r : schema.returns()) {
      if (!first) out += ',';
      first = false;
      type_json(out, r.type());
    }
    out += "]}";
    return dup(out);
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return nullptr;
  }
}

void oxt_free(char* p) { std::free(p); }

// Inference mode for the calling thread until the matching exit.
void* oxt_inference_mode_enter() {
  try {
    return new c10::InferenceMode();
  } catch (...) {
    return nullptr;
  }
}

void oxt_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

// The libtorch version this plugin was built against.
const char* oxt_torch_version() {
  static const std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH);
  return v.c_str();
}
}
