/* hostile_clock: prints everything a program could use to behave differently from run to run:
 * the wall clock, the monotonic clock, time(), random bytes from random_get (getentropy), how
 * long a sleep took on the monotonic clock, the entries of /inputs in the order readdir returns
 * them with their modification times, and the modification time of a file it creates in
 * /outputs. In deterministic mode two runs with the same seed print identical bytes.
 *
 * Usage: hostile_clock [SLEEP_MS=10]   (a long sleep tests that sleeping cannot outlast the
 *                                       wall-clock limit)
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static void hex(const char *name, const unsigned char *b, size_t n) {
    printf("%s=", name);
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    long sleep_ms = argc > 1 ? atol(argv[1]) : 10;
    struct timespec rt, mono0, mono1, res;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("realtime=%lld.%09ld\n", (long long)rt.tv_sec, rt.tv_nsec);
    printf("time=%lld\n", (long long)time(NULL));
    printf("monotonic=%lld.%09ld\n", (long long)mono0.tv_sec, mono0.tv_nsec);
    printf("monotonic_res_ns=%lld\n", (long long)res.tv_sec * 1000000000LL + res.tv_nsec);

    unsigned char secure[16], insecure[16];
    getentropy(secure, sizeof secure);
    hex("random", secure, sizeof secure);
    (void)__wasi_random_get(insecure, sizeof insecure);
    hex("random2", insecure, sizeof insecure);

    struct timespec req = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
    nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &mono1);
    long long slept = (mono1.tv_sec - mono0.tv_sec) * 1000000000LL + (mono1.tv_nsec - mono0.tv_nsec);
    printf("slept_ns=%lld (asked %ld ms)\n", slept, sleep_ms);

    DIR *d = opendir("/inputs");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "/inputs/%s", e->d_name);
        if (stat(path, &st) == 0)
            printf("entry %s mtime=%lld\n", e->d_name, (long long)st.st_mtim.tv_sec);
    }
    if (d) closedir(d);
    FILE *f = fopen("/outputs/probe.txt", "w");
    struct stat st;
    if (f && fclose(f) == 0 && stat("/outputs/probe.txt", &st) == 0)
        printf("created mtime=%lld\n", (long long)st.st_mtim.tv_sec);
    return 0;
}
