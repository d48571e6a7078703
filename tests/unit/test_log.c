/* ops/log: one event, one line. What producers write (a message id, an
 * error quoting their data) can neither end a line nor fake a field. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/json_scan.h"
#include "ops/log.h"
#include "test.h"

/* A producer's message id that tries to start a line of its own. */
#define FORGING_ID "m-1\n2026-01-01T00:00:00.000Z error forged"

/* Logs one event and returns its text; the caller frees it. */
static char *log_one(int json, const char *shard, const char *id, const char *msg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ob_log_setup(OB_SEV_DEBUG, json);
    ob_log_set_stream(f);
    ob_log_at(OB_SEV_WARN, shard, id, "%s", msg);
    ob_log_set_stream(NULL);
    fclose(f);
    return text;
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TEST(a_message_id_with_a_line_break_stays_on_its_line_in_text_logs)
{
    char *out = log_one(0, "shardId-1", FORGING_ID, "poison item: payload is missing");
    if (lines(out) != 1)
        ob_test_fail(__FILE__, __LINE__, "one event made %zu lines:\n%s", lines(out), out);
    CHECK(strstr(out, " id=\"m-1\\n2026-01-01T00:00:00.000Z error forged\" poison item: payload is missing\n"));
    free(out);
}

TEST(a_message_id_cannot_fake_another_field_in_text_logs)
{
    char *spaced = log_one(0, "shardId-1", "x shard=other", "m");
    char *quoted = log_one(0, "shardId-1", "a\"b\\", "m");
    char *empty = log_one(0, "shardId-1", "", "m");
    CHECK(strstr(spaced, " shard=shardId-1 id=\"x shard=other\" m\n"));
    CHECK(strstr(quoted, " id=\"a\\\"b\\\\\" m\n"));
    CHECK(strstr(empty, " id=\"\" m\n"));
    free(spaced);
    free(quoted);
    free(empty);
}

TEST(a_plain_message_id_is_written_as_it_is_in_text_logs)
{
    char *out = log_one(0, "shardId-1", "6f1c2a9e-0b7d-4a31-9f55-2f8a1d3c7e42", "delivered");
    CHECK(strstr(out, " shard=shardId-1 id=6f1c2a9e-0b7d-4a31-9f55-2f8a1d3c7e42 delivered\n"));
    free(out);
}

TEST(control_characters_in_a_text_log_message_are_escaped)
{
    /* An error text may quote what a producer wrote. */
    char *out = log_one(0, NULL, NULL, "lastError: a\r\n2026-01-01T00:00:00.000Z error forged\x1b[2J\x7f \"q\" \\");
    if (lines(out) != 1)
        ob_test_fail(__FILE__, __LINE__, "one event made %zu lines:\n%s", lines(out), out);
    CHECK(strstr(out, " lastError: a\\r\\n2026-01-01T00:00:00.000Z error forged\\x1b[2J\\x7f \"q\" \\\n"));
    free(out);
}

TEST(bytes_that_are_not_utf8_are_shown_as_hex_in_text_logs)
{
    /* "é", then a character cut short (a truncated message). */
    char *out = log_one(0, NULL, "caf\xc3\xa9", "x \xe2\x82");
    CHECK(strstr(out, " id=\"caf\xc3\xa9\" x \\xe2\\x82\n"));
    free(out);
}

/* The member's value, decoded, from a JSON log line; NULL when the line
 * is not a JSON object or has no such member. The caller frees it. */
static char *json_member(const char *line, const char *name)
{
    struct ob_jscan s;
    ob_jscan_init(&s, line, strlen(line));
    if (!ob_jscan_object(&s))
        return NULL;
    struct ob_jspan key, value;
    char *found = NULL;
    while (ob_jscan_key(&s, &key)) {
        if (!ob_jscan_string(&s, &value))
            return NULL;
        if (key.len == strlen(name) && memcmp(key.s, name, key.len) == 0) {
            free(found);
            found = ob_jspan_dup(&value);
        }
    }
    if (!ob_jscan_done(&s)) {
        free(found);
        return NULL;
    }
    return found;
}

TEST(json_log_lines_stay_valid_json_and_keep_what_producers_wrote)
{
    const char *id = FORGING_ID "\"\\\x01\x7f";
    char *out = log_one(1, "shardId-1", id, "lastError: \"a\"\r\n\x1b[2J");
    if (lines(out) != 1 || out[strlen(out) - 1] != '\n')
        ob_test_fail(__FILE__, __LINE__, "one event made %zu lines:\n%s", lines(out), out);
    out[strlen(out) - 1] = '\0';
    char *got_id = json_member(out, "message_id"), *got_msg = json_member(out, "msg");
    CHECK_STR(got_id, id);
    CHECK_STR(got_msg, "lastError: \"a\"\r\n\x1b[2J");
    free(got_id);
    free(got_msg);
    free(out);
}

TEST(bytes_that_are_not_utf8_become_replacement_characters_in_json_logs)
{
    char *out = log_one(1, NULL, NULL, "cut \xe2\x82 and \xff, kept \xc3\xa9");
    out[strlen(out) - 1] = '\0';
    char *got = json_member(out, "msg");
    CHECK_STR(got, "cut \xef\xbf\xbd\xef\xbf\xbd and \xef\xbf\xbd, kept \xc3\xa9");
    free(got);
    free(out);
}

/* ---- journald priority prefixes ---- */

TEST(journal_stream_names_a_file_by_its_decimal_device_and_inode)
{
    CHECK(ob_log_journal_names("66306:1234", 66306, 1234));
    CHECK(!ob_log_journal_names("66306:1235", 66306, 1234));
    CHECK(!ob_log_journal_names("66307:1234", 66306, 1234));
}

TEST(a_journal_stream_that_is_not_device_colon_inode_names_no_file)
{
    const char *bad[] = { "", "66306", "66306:", ":1234", "66306:1234x", "66306:1234:5",
                          " 66306:1234", "-66306:1234", "66306:+1234", "0x10302:1234" };
    CHECK(!ob_log_journal_names(NULL, 66306, 1234));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ob_log_journal_names(bad[i], 66306, 1234))
            ob_test_fail(__FILE__, __LINE__, "'%s' names the file", bad[i]);
}

/* Sets JOURNAL_STREAM as systemd does to the file f is open on, or to
 * another file of its file system. */
static void set_journal_stream(FILE *f, bool names_f)
{
    struct stat st;
    char names[64];
    fstat(fileno(f), &st);
    snprintf(names, sizeof names, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (names_f ? 0 : 1));
    setenv("JOURNAL_STREAM", names, 1);
}

/* Logs one event of each severity to a file that JOURNAL_STREAM names
 * (journal) or names not, and returns what the file holds; the caller
 * frees it. */
static char *log_each_severity(int json, bool journal)
{
    FILE *f = tmpfile();
    set_journal_stream(f, journal);
    ob_log_setup(OB_SEV_DEBUG, json);
    ob_log_set_stream(f);
    ob_log_error("e");
    ob_log_warn("w");
    ob_log_info("i");
    ob_log_debug("d");
    ob_log_set_stream(NULL);
    unsetenv("JOURNAL_STREAM");

    struct ob_buf text = { 0 };
    char chunk[512];
    size_t n;
    rewind(f);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ob_buf_append(&text, chunk, n);
    fclose(f);
    return ob_buf_steal(&text);
}

/* The line of text that ends with end, from its start. */
static char *line_ending(const char *text, const char *end)
{
    const char *at = strstr(text, end);
    if (!at)
        return NULL;
    const char *start = at;
    while (start > text && start[-1] != '\n')
        start--;
    return strndup(start, (size_t)(at - start) + strlen(end));
}

static void check_line_starts(const char *text, const char *end, const char *start)
{
    char *line = line_ending(text, end);
    if (!line || strncmp(line, start, strlen(start)) != 0)
        ob_test_fail(__FILE__, __LINE__, "the line ending '%s' should start with '%s':\n%s", end,
                     start, text);
    free(line);
}

TEST(text_lines_to_the_journal_start_with_their_syslog_priority)
{
    char *out = log_each_severity(0, true);
    check_line_starts(out, " e\n", "<3>2");
    check_line_starts(out, " w\n", "<4>2");
    check_line_starts(out, " i\n", "<6>2");
    check_line_starts(out, " d\n", "<7>2");
    free(out);
}

TEST(json_lines_to_the_journal_start_with_their_syslog_priority)
{
    /* journald takes the prefix off: the journal's message is the JSON. */
    char *out = log_each_severity(1, true);
    check_line_starts(out, "\"msg\":\"e\"}\n", "<3>{\"time\":");
    check_line_starts(out, "\"msg\":\"w\"}\n", "<4>{\"time\":");
    check_line_starts(out, "\"msg\":\"i\"}\n", "<6>{\"time\":");
    check_line_starts(out, "\"msg\":\"d\"}\n", "<7>{\"time\":");
    free(out);
}

TEST(lines_to_a_file_the_journal_stream_does_not_name_have_no_prefix)
{
    char *text = log_each_severity(0, false), *json = log_each_severity(1, false);
    check_line_starts(text, " e\n", "2");
    check_line_starts(text, " d\n", "2");
    check_line_starts(json, "\"msg\":\"e\"}\n", "{");
    free(text);
    free(json);
}

TEST(a_line_written_past_the_logger_gets_the_prefix_only_for_the_journal)
{
    /* `check` prints config errors in the compilers' format itself. */
    FILE *f = tmpfile();
    set_journal_stream(f, true);
    ob_log_set_stream(f);
    CHECK_STR(ob_log_journal_prefix(OB_SEV_ERROR), "<3>");
    ob_log_set_stream(NULL);
    CHECK_STR(ob_log_journal_prefix(OB_SEV_ERROR), "");
    unsetenv("JOURNAL_STREAM");
    fclose(f);
}

TEST(lines_to_a_stream_without_a_file_have_no_prefix)
{
    setenv("JOURNAL_STREAM", "0:0", 1);
    char *out = log_one(0, NULL, NULL, "m");
    unsetenv("JOURNAL_STREAM");
    CHECK(out[0] == '2');
    free(out);
}
