// Runs a fuzz target over files, without libFuzzer: every fuzzer is also an
// ordinary test (meson test --suite fuzz) over its committed corpus and the
// regressions, in every build, gcc included.
//
//   fuzz_frames_server_replay DIR_OR_FILE...
//
// Directories are read (not recursively) in name order; names starting with
// '.' are skipped, as are arguments that do not exist (an empty regressions
// directory is not kept by git). Each input prints its name first, so the
// log of a failing run ends with the culprit.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> in_dir;
      for (const auto& entry : fs::directory_iterator(arg, ec)) {
        if (entry.path().filename().string().rfind('.', 0) == 0) continue;
        if (entry.is_regular_file(ec)) in_dir.push_back(entry.path());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else {
      std::printf("skipping %s: not found\n", arg.c_str());
    }
  }
  std::size_t bytes = 0;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::printf("cannot read %s\n", file.c_str());
      return 1;
    }
    const std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("%s (%zu bytes)\n", file.c_str(), data.size());
    std::fflush(stdout);
    // A copy of exactly the input's size, as libFuzzer passes it, so an
    // overread is caught by AddressSanitizer here too.
    std::vector<std::uint8_t> exact(data.begin(), data.end());
    LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
    bytes += data.size();
  }
  std::printf("replayed %zu inputs, %zu bytes\n", files.size(), bytes);
  return 0;
}
