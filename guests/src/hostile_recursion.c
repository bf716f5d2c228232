/* hostile_recursion: unbounded recursion on the Wasm call stack (the frames hold only Wasm
 * locals, so it is the engine's stack limit that stops it, not the C shadow stack).
 * Expected outcome: StackOverflow.
 */
#include <stdio.h>
#include <stdlib.h>

static volatile unsigned depth;

static unsigned recurse(unsigned n, unsigned limit) {
    depth = n;
    if (n == limit) return n;
    unsigned r = recurse(n + 1, limit);
    depth = r;
    return r ^ n;
}

int main(int argc, char **argv) {
    unsigned limit = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 0; /* 0: never */
    printf("%u\n", recurse(1, limit));
    return 0;
}
