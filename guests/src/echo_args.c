/* echo_args: shows the guest what the sandbox gave it. Used by the tests.
 *
 * stdout: "argc=N", one "argv[i]=..." line per argument, one "env=K=V" line per environment
 *         variable (in the order the host passed them), then one "file PATH SIZE FNV" line per
 *         regular file found under /inputs (recursively, names sorted byte-wise, so the listing is
 *         independent of the host's directory order).
 * writes: /outputs/manifest.txt with the same "PATH SIZE FNV" lines.
 * FNV is the 64-bit FNV-1a hash of the file's bytes, in hex.
 * Exit code: 0, or 1 if /outputs/manifest.txt cannot be written.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern char **environ;

static FILE *manifest;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hash_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("error %s: %s\n", path, strerror(errno));
        return;
    }
    static unsigned char buf[65536];
    uint64_t h = 0xcbf29ce484222325ull, size = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
        size += n;
    }
    fclose(f);
    printf("file %s %llu %016llx\n", path, (unsigned long long)size, (unsigned long long)h);
    if (manifest) fprintf(manifest, "%s %llu %016llx\n", path, (unsigned long long)size, (unsigned long long)h);
}

static void walk(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT) printf("error %s: %s\n", dir, strerror(errno));
        return;
    }
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) names = realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                walk(path);
            else if (S_ISREG(st.st_mode))
                hash_file(path);
            else
                printf("other %s\n", path);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; e && *e; e++) printf("env=%s\n", *e);
    manifest = fopen("/outputs/manifest.txt", "w");
    walk("/inputs");
    if (!manifest || fclose(manifest) != 0) {
        printf("cannot write /outputs/manifest.txt: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
