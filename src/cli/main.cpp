// `hostq`: the command line. Verbs arrive with their issues; see README.md.
#include <cstdio>

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  std::fprintf(stderr, "hostq: not built yet\n");
  return 2;
}
