/* base64, ISO 8601 and UUIDv7: the encodings every outbox item carries. */
#include "test.h"

#include <pthread.h>
#include <time.h>

#include "core/codec.h"

TEST(base64_encodes_rfc4648_vectors)
{
    static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        struct ob_buf b = { 0 };
        ob_base64_encode(&b, in[i], strlen(in[i]));
        CHECK_STR(ob_buf_cstr(&b), out[i]);
        ob_buf_free(&b);
    }
}

TEST(base64_round_trips_every_byte_value)
{
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    struct ob_buf enc = { 0 }, dec = { 0 };
    ob_base64_encode(&enc, bytes, sizeof bytes);
    CHECK(ob_base64_decode(&dec, enc.data, enc.len));
    CHECK_INT(dec.len, 256);
    CHECK(memcmp(dec.data, bytes, 256) == 0);
    ob_buf_free(&enc);
    ob_buf_free(&dec);
}

TEST(base64_decode_rejects_malformed_input)
{
    static const char *const bad[] = { "Zg=", "Zg", "Z===", "Zm9v!", "Zh==", "Zm9=v", "Zm 9v", "=Zm9" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ob_buf b = { 0 };
        if (ob_base64_decode(&b, bad[i], strlen(bad[i]))) {
            ob_test_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
            ob_buf_free(&b);
            return;
        }
        CHECK_INT(b.len, 0);
        ob_buf_free(&b);
    }
}

TEST(iso8601_formats_utc_with_milliseconds)
{
    char s[OB_ISO8601_LEN];
    ob_iso8601_ms(0, s);
    CHECK_STR(s, "1970-01-01T00:00:00.000Z");
    ob_iso8601_ms(1764108312123LL, s);
    CHECK_STR(s, "2025-11-25T22:05:12.123Z");
}

static void *format_before_the_epoch(void *out)
{
    ob_iso8601_ms(-500, out);
    return NULL;
}

TEST(iso8601_formats_the_second_before_the_epoch_first_on_its_thread)
{
    /* A thread keeps its last second's text; none is kept yet, whatever
     * the second. */
    char s[OB_ISO8601_LEN] = "";
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, format_before_the_epoch, s), 0);
    pthread_join(t, NULL);
    CHECK_STR(s, "1969-12-31T23:59:59.500Z");
}

TEST(utc_calendar_time_agrees_with_gmtime_across_four_centuries)
{
    /* Leap days, month and year ends, 1900 and 2100 (not leap), 2000 (leap),
     * and a stride that lands on every time of day. */
    for (int64_t t = -2208988800LL; t < 10413792000LL; t += 86400 * 7 + 3607) {
        struct ob_utc u;
        ob_utc_from_epoch(t, &u);
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        if (u.year != tm.tm_year + 1900 || u.mon != tm.tm_mon + 1 || u.day != tm.tm_mday || u.hour != tm.tm_hour ||
            u.min != tm.tm_min || u.sec != tm.tm_sec) {
            CHECK_INT(t, -1); /* names the first second that differs */
            break;
        }
    }
    struct ob_utc u;
    ob_utc_from_epoch(951782400, &u); /* 2000-02-29T00:00:00Z */
    CHECK(u.year == 2000 && u.mon == 2 && u.day == 29 && u.hour == 0);
    ob_utc_from_epoch(-1, &u);
    CHECK(u.year == 1969 && u.mon == 12 && u.day == 31 && u.hour == 23 && u.min == 59 && u.sec == 59);
}

TEST(iso8601_parses_what_producers_write)
{
    int64_t ms;
    CHECK(ob_iso8601_parse("2025-11-25T22:05:12.123Z", &ms));
    CHECK_INT(ms, 1764108312123LL);
    CHECK(ob_iso8601_parse("2025-11-25T22:05:12Z", &ms));
    CHECK_INT(ms, 1764108312000LL);
    /* .NET's round-trip format: seven fraction digits and an offset. */
    CHECK(ob_iso8601_parse("2025-11-25T23:05:12.1234567+01:00", &ms));
    CHECK_INT(ms, 1764108312123LL);
    CHECK(!ob_iso8601_parse("2025-11-25", &ms));
    CHECK(!ob_iso8601_parse("2025-13-25T22:05:12Z", &ms));
    CHECK(!ob_iso8601_parse("2025-11-25T22:05:12.Z", &ms));
    CHECK(!ob_iso8601_parse("2025-11-25T22:05:12Zjunk", &ms));
}

TEST(uuid7_has_version_variant_and_time_order)
{
    uint8_t r[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    char a[OB_UUID_STR_LEN], b[OB_UUID_STR_LEN];
    ob_uuid7_format(0x0189abcdef01LL, r, a);
    CHECK_STR(a, "0189abcd-ef01-7fff-bfff-ffffffffffff");
    uint8_t z[10] = { 0 };
    ob_uuid7_format(0x0189abcdef02LL, z, b);
    CHECK_STR(b, "0189abcd-ef02-7000-8000-000000000000");
    CHECK(strcmp(a, b) < 0);
}

TEST(integers_are_written_in_decimal_across_the_whole_range)
{
    static const int64_t values[] = { 0, 7, -7, 1000, 1764547200, INT64_MAX, INT64_MIN };
    static const char *const texts[] = { "0", "7", "-7", "1000", "1764547200", "9223372036854775807",
                                         "-9223372036854775808" };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct ob_buf b = { 0 };
        ob_buf_put_int(&b, values[i]);
        CHECK_STR(ob_buf_cstr(&b), texts[i]);
        ob_buf_free(&b);
    }
}

TEST(an_exact_reserve_holds_what_is_asked_and_no_more)
{
    struct ob_buf b = { 0 };
    ob_buf_puts(&b, "abc");
    size_t before = b.cap;
    ob_buf_reserve_exact(&b, 1);
    CHECK_INT(b.cap, before); /* room enough already: unchanged */
    ob_buf_reserve_exact(&b, 1000);
    CHECK_INT(b.cap, 3 + 1000 + 1);
    CHECK_STR(ob_buf_cstr(&b), "abc");
    ob_buf_free(&b);
}

TEST(a_decoded_payload_takes_its_own_size)
{
    struct ob_buf b = { 0 };
    CHECK(ob_base64_decode(&b, "QUJDREVGR0g=", 12));
    CHECK_INT(b.len, 8);
    CHECK_INT(b.cap, 9 + 1); /* 12 / 4 * 3 bytes and the terminator */
    CHECK_STR(ob_buf_cstr(&b), "ABCDEFGH");
    ob_buf_free(&b);
}

TEST(base64_round_trips_every_length_and_rejects_each_non_canonical_ending)
{
    unsigned char bytes[40];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof bytes; n++) {
        struct ob_buf enc = { 0 }, dec = { 0 };
        ob_base64_encode(&enc, bytes, n);
        CHECK(ob_base64_decode(&dec, enc.data, enc.len));
        CHECK_INT(dec.len, n);
        CHECK(n == 0 || memcmp(dec.data, bytes, n) == 0);
        ob_buf_free(&enc);
        ob_buf_free(&dec);
    }
    /* "QU?=" and "Q?==": the last digit may carry no bits past the data. */
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int v = 0; v < 64; v++) {
        char one[] = "QU?=", two[] = "Q?==";
        one[2] = digits[v];
        two[1] = digits[v];
        struct ob_buf b = { 0 };
        CHECK(ob_base64_decode(&b, one, 4) == ((v & 3) == 0));
        ob_buf_free(&b);
        CHECK(ob_base64_decode(&b, two, 4) == ((v & 15) == 0));
        ob_buf_free(&b);
    }
}

TEST(joined_strings_fill_a_fixed_buffer_and_say_when_they_were_cut)
{
    char b[8];
    CHECK(ob_str_join(b, sizeof b, "ab", ".", "cd", NULL));
    CHECK_STR(b, "ab.cd");
    CHECK(ob_str_join(b, sizeof b, NULL));
    CHECK_STR(b, "");
    CHECK(!ob_str_join(b, sizeof b, "abcd", "efgh", NULL));
    CHECK_STR(b, "abcdefg");
    CHECK(ob_str_join(b, sizeof b, "abcdefg", NULL));
}

TEST(hex_writes_every_byte_as_two_lowercase_digits)
{
    uint8_t bytes[256];
    char out[513], want[3];
    for (int i = 0; i < 256; i++)
        bytes[i] = (uint8_t)i;
    ob_hex_encode(bytes, sizeof bytes, out);
    CHECK_INT(strlen(out), 512);
    for (int i = 0; i < 256; i++) {
        snprintf(want, sizeof want, "%02x", i);
        if (memcmp(out + 2 * i, want, 2) != 0)
            CHECK_INT(i, -1); /* names the first byte that differs */
    }
}
