// Errors of the native core. Kernels throw tk::Error; the N-API layer turns it into a JS
// TunekitError with the same stable code. Nothing in the core aborts the process.
#pragma once
#include <stdexcept>
#include <string>
#include <sstream>

namespace tk {

enum class ErrorCode { Shape, Dtype, OOM, Format, Backend, Value, Index, Disposed, Device };

inline const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::Shape: return "ERR_SHAPE";
    case ErrorCode::Dtype: return "ERR_DTYPE";
    case ErrorCode::OOM: return "ERR_OOM";
    case ErrorCode::Format: return "ERR_FORMAT";
    case ErrorCode::Backend: return "ERR_BACKEND";
    case ErrorCode::Value: return "ERR_VALUE";
    case ErrorCode::Index: return "ERR_INDEX";
    case ErrorCode::Disposed: return "ERR_DISPOSED";
    case ErrorCode::Device: return "ERR_DEVICE";
  }
  return "ERR_UNKNOWN";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... R>
void append(std::ostringstream& os, const T& v, const R&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <typename... Args>
[[noreturn]] void fail(ErrorCode code, const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(code, os.str());
}

}  // namespace tk

// TK_CHECK(cond, code, parts...): throw tk::Error(code, "parts...") unless cond holds.
#define TK_CHECK(cond, code, ...)                          \
  do {                                                     \
    if (!(cond)) ::tk::fail(::tk::ErrorCode::code, __VA_ARGS__); \
  } while (0)
