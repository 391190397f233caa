// Embedding gather / scatter-add: fast vs reference with repeated ids, bad ids throw ERR_INDEX.
#include <vector>

#include "../core/status.h"
#include "../cpu/embedding.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;

TK_TEST(gather_scatter_match_reference) {
  const int64_t cases[][3] = {{1, 1, 1}, {7, 33, 5}, {129, 17, 1000}, {1000, 768, 50}, {4096, 64, 3}};
  for (auto& c : cases) {
    int64_t n = c[0], row = c[1], num = c[2];
    auto table = randn(num * row, 1);
    std::vector<int32_t> idx(n);
    for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<int32_t>((i * 7919 + 3) % num);  // many repeats
    std::vector<float> o1(n * row), o2(n * row);
    gather_rows(table.data(), idx.data(), o1.data(), n, row, num);
    gather_rows_reference(table.data(), idx.data(), o2.data(), n, row, num);
    TK_EXPECT(o1 == o2, "gather n %lld", (long long)n);
    auto dout = randn(n * row, 2);
    auto t1 = randn(num * row, 3), t2 = t1;  // accumulated into
    scatter_add_rows(dout.data(), idx.data(), t1.data(), n, row, num);
    scatter_add_rows_reference(dout.data(), idx.data(), t2.data(), n, row, num);
    TK_EXPECT(t1 == t2, "scatter n %lld (same order of addition: bitwise equal)", (long long)n);
  }
}

TK_TEST(gather_rejects_bad_ids) {
  auto table = randn(4 * 3, 1);
  std::vector<float> out(3 * 3, 7.0f);
  for (int32_t bad : {4, -1, 1000000}) {
    std::vector<int32_t> idx = {0, bad, 1};
    bool threw = false;
    try {
      gather_rows(table.data(), idx.data(), out.data(), 3, 3, 4);
    } catch (const tk::Error& e) {
      threw = e.code() == tk::ErrorCode::Index && std::string(e.what()).find("position 1") != std::string::npos;
    }
    TK_EXPECT(threw, "id %d throws ERR_INDEX naming position 1", bad);
    TK_EXPECT(out[0] == 7.0f, "nothing written before the check");
    threw = false;
    try {
      scatter_add_rows(out.data(), idx.data(), table.data(), 3, 3, 4);
    } catch (const tk::Error& e) {
      threw = e.code() == tk::ErrorCode::Index;
    }
    TK_EXPECT(threw, "scatter id %d throws", bad);
  }
}
