// Native test runner: runs every TK_TEST, or those whose name contains argv[1].
#include <chrono>
#include <cstring>

#include "test_harness.h"

namespace tk::test {
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
int& failures() {
  static int f = 0;
  return f;
}
}  // namespace tk::test

int main(int argc, char** argv) {
  using namespace tk::test;
  int passed = 0, failed = 0;
  for (auto& c : registry()) {
    if (argc > 1 && std::strstr(c.name, argv[1]) == nullptr) continue;
    int before = failures();
    auto t0 = std::chrono::steady_clock::now();
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  FAIL %s threw: %s\n", c.name, e.what());
      failures()++;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool ok = failures() == before;
    std::printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", c.name, ms);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
