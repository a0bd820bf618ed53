// The behaviour suite's main: every adapter compiled in runs every case,
// except one the kernel refuses at run time (io_uring disabled by a sysctl
// or a sandbox). Its cases are excluded and the reason is printed; with no
// usable adapter at all the run reports skipped (77), never passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest.h>

#include <cstdio>
#include <string>

#include "gust/net.hpp"

int main(int argc, char** argv) {
  doctest::Context ctx;
  int usable = 0;
  for (gust::adapter a : gust::available_adapters()) {
    std::string why;
    if (!gust::adapter_usable(a, &why)) {
      ++usable;
      continue;
    }
    std::printf("SKIP every case on %s: %s\n", std::string(gust::to_string(a)).c_str(), why.c_str());
    ctx.addFilter("test-case-exclude",
                  ("*on<gust::adapter::" + std::string(gust::to_string(a)) + ">*").c_str());
  }
  if (usable == 0) {
    std::printf("SKIP: no adapter can run here\n");
    return 77;
  }
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
