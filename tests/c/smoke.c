/* A C caller of the exitless ABI: seal a file, read it back, detect tampering.
   Built and run by tests/test_c_abi.py against native/ffi/include/exitless.h. */
#include <stdio.h>
#include <string.h>
#include "exitless.h"

#define CHECK(call, want)                                                              \
    do {                                                                               \
        ExitlessStatus st_ = (call);                                                   \
        if (st_ != (want)) {                                                           \
            fprintf(stderr, "%s:%d: %s -> %d (want %d): %s\n", __FILE__, __LINE__, #call, \
                    st_, (want), exitless_last_error_message());                       \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *path = argv[1];
    uint8_t key[32];
    memset(key, 0x42, sizeof key);
    const uint8_t ctx[] = "c-smoke";
    static uint8_t data[200000], back[200000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 31);

    ExitlessOptions opts;
    CHECK(exitless_options_default(&opts), EXITLESS_OK);
    opts.segment_size = 4096;
    opts.algorithm = EXITLESS_CHACHA20_POLY1305;
    ExitlessWriter *w = NULL;
    CHECK(exitless_writer_open(path, key, sizeof key, ctx, sizeof ctx - 1, &opts, &w), EXITLESS_OK);
    CHECK(exitless_writer_write(w, data, 12345), EXITLESS_OK);
    CHECK(exitless_writer_write(w, data + 12345, sizeof data - 12345), EXITLESS_OK);
    CHECK(exitless_writer_finish(w), EXITLESS_OK);
    ExitlessStats stats;
    CHECK(exitless_writer_stats(w, &stats), EXITLESS_OK);
    exitless_writer_free(w);
    /* The backend's counters are `stats.io` (ExitlessCounters), the stream's own beside them. */
    if (stats.io.bytes < sizeof data || stats.io.ops == 0 || stats.io.completions_rejected != 0 ||
        stats.segments < sizeof data / 4096) {
        fprintf(stderr, "unexpected stats: %llu bytes, %llu ops, %llu segments\n",
                (unsigned long long)stats.io.bytes, (unsigned long long)stats.io.ops,
                (unsigned long long)stats.segments);
        return 1;
    }

    ExitlessReader *r = NULL;
    size_t n = 0;
    uint64_t size = 0;
    CHECK(exitless_reader_open(path, key, sizeof key, ctx, sizeof ctx - 1, NULL, &r), EXITLESS_OK);
    CHECK(exitless_reader_size(r, &size), EXITLESS_OK);
    CHECK(exitless_reader_read(r, back, sizeof back, &n), EXITLESS_OK);
    exitless_reader_free(r);
    if (size != sizeof data || n != sizeof data || memcmp(back, data, n) != 0) {
        fprintf(stderr, "round trip mismatch\n");
        return 1;
    }

    FILE *f = fopen(path, "r+b");
    fseek(f, 10000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 10000, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    CHECK(exitless_reader_open(path, key, sizeof key, ctx, sizeof ctx - 1, NULL, &r), EXITLESS_OK);
    CHECK(exitless_reader_read(r, back, sizeof back, &n), EXITLESS_ERR_INTEGRITY);
    printf("tamper detected: %s\n", exitless_last_error_message());
    exitless_reader_free(r);
    return 0;
}
