/* The credential chain and region resolution, against a scratch HOME and
 * scratch shared files: each test starts from an environment with no AWS_*
 * variables and no shared files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/credentials.h"
#include "core/buf.h"
#include "test.h"

static char scratch[] = "/tmp/ob-credentials-XXXXXX";
static char creds_path[sizeof scratch + 32];
static char config_path[sizeof scratch + 32];

static void remove_scratch(void)
{
    unlink(creds_path);
    unlink(config_path);
    rmdir(scratch);
}

static const char *const aws_vars[] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
};

/* A clean slate: HOME is the scratch folder (so the real ~/.aws is never
 * read), the shared files are the scratch ones and do not exist. */
static void fresh_env(void)
{
    if (!creds_path[0]) {
        if (!mkdtemp(scratch)) {
            perror("mkdtemp");
            exit(2);
        }
        snprintf(creds_path, sizeof creds_path, "%s/credentials", scratch);
        snprintf(config_path, sizeof config_path, "%s/config", scratch);
        atexit(remove_scratch);
    }
    for (size_t i = 0; i < sizeof aws_vars / sizeof aws_vars[0]; i++)
        unsetenv(aws_vars[i]);
    setenv("HOME", scratch, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds_path, 1);
    setenv("AWS_CONFIG_FILE", config_path, 1);
    unlink(creds_path);
    unlink(config_path);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void set_env_keys(void)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
}

TEST(credentials_config_keys_beat_environment)
{
    fresh_env();
    set_env_keys();
    struct ob_credentials_options opt = { .access_key_id = "AKIDCONF",
                                          .secret_access_key = "conf-secret",
                                          .session_token = "conf-token" };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDCONF");
    CHECK_STR(c.secret_access_key, "conf-secret");
    CHECK_STR(c.session_token, "conf-token");
    CHECK_STR(c.source, "config");
    ob_aws_credentials_free(&c);
}

TEST(credentials_config_access_key_without_secret_is_config_error)
{
    fresh_env();
    set_env_keys();
    struct ob_credentials_options opt = { .access_key_id = "AKIDCONF" };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CONFIG);
    CHECK(strstr(err.msg, "aws.secret_access_key"));
    CHECK(!strstr(err.msg, "AKIDCONF"));
}

TEST(credentials_environment_beats_shared_files)
{
    fresh_env();
    set_env_keys();
    setenv("AWS_SESSION_TOKEN", "env-token", 1);
    write_file(creds_path, "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDENV");
    CHECK_STR(c.session_token, "env-token");
    CHECK_STR(c.source, "environment");
    ob_aws_credentials_free(&c);
}

TEST(credentials_environment_key_without_secret_is_error)
{
    fresh_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    CHECK(strstr(err.msg, "AWS_SECRET_ACCESS_KEY"));
}

TEST(credentials_explicit_profile_skips_environment)
{
    fresh_env();
    set_env_keys();
    write_file(creds_path, "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = def-secret\n"
                           "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = work-secret\n");
    struct ob_credentials_options opt = { .profile = "work" };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDWORK");
    CHECK(strstr(c.source, creds_path));
    CHECK(strstr(c.source, "profile work"));
    ob_aws_credentials_free(&c);
}

TEST(credentials_aws_profile_selects_profile_but_environment_still_wins)
{
    fresh_env();
    setenv("AWS_PROFILE", "work", 1);
    write_file(creds_path, "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = def-secret\n"
                           "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = work-secret\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDWORK");
    ob_aws_credentials_free(&c);

    set_env_keys();
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDENV");
    ob_aws_credentials_free(&c);
}

TEST(credentials_credentials_file_beats_config_file)
{
    fresh_env();
    write_file(creds_path,
               "[default]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = creds-secret\n");
    write_file(config_path,
               "[default]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = cfg-secret\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDCREDS");
    CHECK(strstr(c.source, "shared credentials file"));
    ob_aws_credentials_free(&c);
}

TEST(credentials_config_file_uses_profile_prefixed_sections)
{
    fresh_env();
    /* "[work]" is not a profile in the config file: only "[profile work]" is. */
    write_file(config_path, "[work]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = wrong\n"
                            "[profile   work ]\naws_access_key_id = AKIDWORK\naws_secret_access_key = s\n"
                            "aws_session_token = tok\n");
    struct ob_credentials_options opt = { .profile = "work" };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDWORK");
    CHECK_STR(c.session_token, "tok");
    CHECK(strstr(c.source, "config file"));
    CHECK(strstr(c.source, config_path));
    ob_aws_credentials_free(&c);
}

TEST(credentials_config_file_default_section_is_plain_default)
{
    fresh_env();
    write_file(config_path,
               "[default]\nregion = eu-west-1\naws_access_key_id = AKIDDEF\naws_secret_access_key = s\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDDEF");
    CHECK(c.session_token == NULL);
    ob_aws_credentials_free(&c);
}

TEST(credentials_ini_tolerates_whitespace_comments_key_case_and_sub_settings)
{
    fresh_env();
    write_file(creds_path, "# a comment\n"
                           "; another\n"
                           "\n"
                           "  [ default ]  \n"
                           "   AWS_Access_Key_ID   =   AKIDSPACED   \n"
                           "\t# indented comment\n"
                           "aws_secret_access_key=secret with = sign\n"
                           "s3 =\n"
                           "  aws_secret_access_key = not-this-one\n"
                           "[other]\n"
                           "aws_access_key_id = AKIDOTHER\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDSPACED");
    CHECK_STR(c.secret_access_key, "secret with = sign");
    ob_aws_credentials_free(&c);
}

TEST(credentials_missing_secret_names_file_and_profile_not_the_key)
{
    fresh_env();
    write_file(creds_path, "[work]\naws_access_key_id = AKIDLONELY\naws_session_token = TOKENVALUE\n");
    struct ob_credentials_options opt = { .profile = "work" };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    CHECK(strstr(err.msg, creds_path));
    CHECK(strstr(err.msg, "profile work"));
    CHECK(strstr(err.msg, "aws_secret_access_key"));
    CHECK(!strstr(err.msg, "AKIDLONELY"));
    CHECK(!strstr(err.msg, "TOKENVALUE"));
}

TEST(credentials_secret_without_key_is_error_without_the_secret)
{
    fresh_env();
    write_file(config_path, "[default]\naws_secret_access_key = SECRETVALUE\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    CHECK(strstr(err.msg, config_path));
    CHECK(strstr(err.msg, "aws_access_key_id"));
    CHECK(!strstr(err.msg, "SECRETVALUE"));
}

TEST(credentials_nothing_found_lists_every_place_tried)
{
    fresh_env();
    write_file(config_path, "[profile other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = s\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    CHECK(strstr(err.msg, "aws.access_key_id"));
    CHECK(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
    CHECK(strstr(err.msg, creds_path));
    CHECK(strstr(err.msg, "no such file"));
    CHECK(strstr(err.msg, config_path));
    CHECK(strstr(err.msg, "no profile default"));
}

TEST(credentials_default_paths_are_under_home)
{
    fresh_env();
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    unsetenv("AWS_CONFIG_FILE");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    struct ob_buf want = { 0 };
    ob_buf_printf(&want, "%s/.aws/credentials", scratch);
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    bool named = strstr(err.msg, want.data) != NULL;
    ob_buf_free(&want);
    CHECK(named);
}

TEST(region_resolution_order_is_config_env_then_profile)
{
    fresh_env();
    write_file(config_path, "[default]\nregion = ap-south-1\n[profile work]\nregion = eu-central-1\n");
    setenv("AWS_REGION", "us-west-2", 1);
    setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
    char *r = NULL;
    struct ob_error err = { 0 };

    CHECK_INT(ob_aws_region_resolve("eu-west-1", NULL, &r, &err), OB_OK);
    CHECK_STR(r, "eu-west-1");
    free(r);
    CHECK_INT(ob_aws_region_resolve(NULL, NULL, &r, &err), OB_OK);
    CHECK_STR(r, "us-west-2");
    free(r);
    unsetenv("AWS_REGION");
    CHECK_INT(ob_aws_region_resolve(NULL, NULL, &r, &err), OB_OK);
    CHECK_STR(r, "us-east-2");
    free(r);
    unsetenv("AWS_DEFAULT_REGION");
    CHECK_INT(ob_aws_region_resolve(NULL, NULL, &r, &err), OB_OK);
    CHECK_STR(r, "ap-south-1");
    free(r);
    CHECK_INT(ob_aws_region_resolve(NULL, "work", &r, &err), OB_OK);
    CHECK_STR(r, "eu-central-1");
    free(r);
    setenv("AWS_PROFILE", "work", 1);
    CHECK_INT(ob_aws_region_resolve(NULL, NULL, &r, &err), OB_OK);
    CHECK_STR(r, "eu-central-1");
    free(r);
}

TEST(region_missing_everywhere_is_config_error)
{
    fresh_env();
    char *r = NULL;
    struct ob_error err = { 0 };
    CHECK_INT(ob_aws_region_resolve(NULL, "work", &r, &err), OB_ERR_CONFIG);
    CHECK(r == NULL);
    CHECK(strstr(err.msg, "AWS_REGION"));
    CHECK(strstr(err.msg, "profile work"));
}
