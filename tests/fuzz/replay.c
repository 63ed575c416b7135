/*
 * Runs a fuzz target's entry point over files and directories of inputs, without
 * libFuzzer: the seed corpus and every saved crasher stay regression tests under ctest.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds one file to the target; returns 0 or -1 when it cannot be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long len;
    int rc = -1;

    if (f == NULL)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    data = malloc(len > 0 ? (size_t)len : 1);
    if (data == NULL || fread(data, 1, (size_t)len, f) != (size_t)len)
        goto out;
    LLVMFuzzerTestOneInput(data, (size_t)len);
    rc = 0;
out:
    free(data);
    fclose(f);
    return rc;
}

/* Replays a file, or every regular file of a directory; returns how many inputs ran. */
static int replay_path(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *de;
    int n = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) == 0 ? 1 : -1;
    dir = opendir(path);
    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        char child[4096];
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= sizeof(child))
            continue;
        if (stat(child, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(child) < 0) {
                closedir(dir);
                return -1;
            }
            n++;
        }
    }
    closedir(dir);
    return n;
}

int main(int argc, char **argv)
{
    int total = 0;

    for (int i = 1; i < argc; i++) {
        int n = replay_path(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("replayed %d inputs\n", total);
    return total > 0 ? 0 : 1;
}
