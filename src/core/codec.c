#include "core/codec.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void ob_base64_encode(struct ob_buf *out, const void *data, size_t len)
{
    const uint8_t *p = data;
    ob_buf_reserve(out, (len + 2) / 3 * 4);
    char *w = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *w++ = b64_alphabet[v >> 18 & 63];
        *w++ = b64_alphabet[v >> 12 & 63];
        *w++ = b64_alphabet[v >> 6 & 63];
        *w++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        *w++ = b64_alphabet[v >> 18 & 63];
        *w++ = b64_alphabet[v >> 12 & 63];
        *w++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        *w++ = '=';
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
}

/* 1 + the value of each byte as a base64 digit; 0 when it is not one. */
static const uint8_t b64_digit[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10,  ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* b64_shifted[k][c]: the digit c stands for, shifted to its place in
 * the 24 bits of the k-th digit of a quantum; B64_BAD for a byte that is
 * no digit. One OR of four lookups decodes a quantum and checks it. */
#define B64_BAD 0x80000000u
static uint32_t b64_shifted[4][256];
static pthread_once_t b64_shifted_once = PTHREAD_ONCE_INIT;

static void b64_shifted_fill(void)
{
    for (int c = 0; c < 256; c++)
        for (int k = 0; k < 4; k++)
            b64_shifted[k][c] = b64_digit[c] ? (uint32_t)(b64_digit[c] - 1) << (18 - 6 * k) : B64_BAD;
}

static uint32_t b64_quantum(const unsigned char *u)
{
    return b64_shifted[0][u[0]] | b64_shifted[1][u[1]] | b64_shifted[2][u[2]] | b64_shifted[3][u[3]];
}

bool ob_base64_decode_to(unsigned char *dst, const char *s, size_t len, size_t *n)
{
    if (len % 4 != 0)
        return false;
    pthread_once(&b64_shifted_once, b64_shifted_fill);
    unsigned char *o = dst;
    const unsigned char *u = (const unsigned char *)s;
    /* Every quantum but a padded last one ('=' is no digit here).
     * Payloads are most of a page's bytes. */
    size_t plain = len && u[len - 1] == '=' ? len - 4 : len;
    size_t i = 0;
    for (; i < plain; i += 4) {
        uint32_t w = b64_quantum(u + i);
        if (w & B64_BAD)
            return false;
        /* The three bytes, big-endian, and one more overwritten next. */
        uint32_t be = __builtin_bswap32(w << 8);
        memcpy(o, &be, 4);
        o += 3;
    }
    if (i < len) {
        /* xx==, xxx= */
        bool two = u[i + 2] == '=';
        unsigned char q[4] = { u[i], u[i + 1], two ? 'A' : u[i + 2], 'A' };
        uint32_t w = b64_quantum(q);
        if ((w & B64_BAD) || (two && u[i + 3] != '='))
            return false;
        /* Non-canonical encodings (stray low bits before padding) are
         * rejected so one payload has exactly one spelling. */
        if (w & (two ? 0xffff : 0xff))
            return false;
        *o++ = (uint8_t)(w >> 16);
        if (!two)
            *o++ = (uint8_t)(w >> 8);
    }
    *o = '\0';
    *n = (size_t)(o - dst);
    return true;
}

bool ob_base64_decode(struct ob_buf *out, const char *s, size_t len)
{
    if (len % 4 != 0)
        return false;
    ob_buf_reserve_exact(out, len / 4 * 3);
    size_t n;
    if (!ob_base64_decode_to((unsigned char *)out->data + out->len, s, len, &n)) {
        out->data[out->len] = '\0';
        return false;
    }
    out->len += n;
    return true;
}

void ob_iso8601_ms(int64_t epoch_ms, char out[OB_ISO8601_LEN])
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int ms = (int)(epoch_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    /* Each thread keeps the last second's text: a mark formats one a message. */
    static _Thread_local bool have_last;
    static _Thread_local time_t last_secs;
    static _Thread_local char last[20];
    if (!have_last || secs != last_secs) {
        struct ob_utc t;
        ob_utc_from_epoch(secs, &t);
        /* Fixed-width fields written by hand: every value is in range here. */
        const int fields[] = { t.year, t.mon, t.day, t.hour, t.min, t.sec };
        const int widths[] = { 4, 2, 2, 2, 2, 2 };
        const char seps[] = "--T::.";
        char *w = last;
        for (int f = 0; f < 6; f++) {
            w = ob_put_digits(w, fields[f], widths[f]);
            *w++ = seps[f];
        }
        last_secs = secs;
        have_last = true;
    }
    memcpy(out, last, 20);
    char *w = ob_put_digits(out + 20, ms, 3);
    w[0] = 'Z';
    w[1] = '\0';
}

char *ob_put_digits(char *w, int v, int width)
{
    for (int d = width - 1; d >= 0; d--) {
        w[d] = (char)('0' + v % 10);
        v /= 10;
    }
    return w + width;
}

/* Civil from days (Howard Hinnant's algorithm), proleptic Gregorian. */
void ob_utc_from_epoch(int64_t epoch_seconds, struct ob_utc *out)
{
    int64_t days = epoch_seconds / 86400, sod = epoch_seconds % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t mon = mp < 10 ? mp + 3 : mp - 9;
    out->year = (int)(yoe + era * 400 + (mon <= 2));
    out->mon = (int)mon;
    out->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    out->hour = (int)(sod / 3600);
    out->min = (int)(sod / 60 % 60);
    out->sec = (int)(sod % 60);
}

static bool parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

bool ob_iso8601_parse(const char *s, int64_t *epoch_ms)
{
    const char *p = s;
    int year, mon, day, hour, min, sec, ms = 0;
    if (!parse_digits(&p, 4, &year) || *p++ != '-' || !parse_digits(&p, 2, &mon) || *p++ != '-' ||
        !parse_digits(&p, 2, &day) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!parse_digits(&p, 2, &hour) || *p++ != ':' || !parse_digits(&p, 2, &min) || *p++ != ':' ||
        !parse_digits(&p, 2, &sec))
        return false;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return false;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (!parse_digits(&p, 2, &oh))
            return false;
        if (*p == ':')
            p++;
        if (!parse_digits(&p, 2, &om))
            return false;
        offset_min = sign * (oh * 60 + om);
    } else {
        return false;
    }
    if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return false;
    /* Days from civil (Howard Hinnant's algorithm): no timegm/TZ dependence. */
    int y = year - (mon <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)offset_min * 60;
    *epoch_ms = secs * 1000 + ms;
    return true;
}

void ob_hex_encode(const uint8_t *data, size_t len, char *out)
{
    /* Both digits of a byte at once: a signature writes three digests. */
    static const char pairs[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                                "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                                "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
                                "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
                                "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
                                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (size_t i = 0; i < len; i++)
        memcpy(out + 2 * i, pairs + 2 * data[i], 2);
    out[2 * len] = '\0';
}

void ob_uuid7_format(int64_t epoch_ms, const uint8_t rand[10], char out[OB_UUID_STR_LEN])
{
    uint8_t u[16];
    uint64_t ts = (uint64_t)epoch_ms & 0xffffffffffffULL;
    for (int i = 0; i < 6; i++)
        u[i] = (uint8_t)(ts >> (40 - 8 * i));
    memcpy(u + 6, rand, 10);
    u[6] = (uint8_t)(0x70 | (u[6] & 0x0f));
    u[8] = (uint8_t)(0x80 | (u[8] & 0x3f));
    char hex[33];
    ob_hex_encode(u, 16, hex);
    snprintf(out, OB_UUID_STR_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}
