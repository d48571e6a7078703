/* The credential chain and region resolution, against a scratch HOME and
 * scratch shared files: each test starts from an environment with no AWS_*
 * variables and no shared files. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/cred_fetch.h"
#include "aws/credentials.h"
#include "core/buf.h"
#include "ops/clock.h"
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
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
};

/* A clean slate: HOME is the scratch folder (so the real ~/.aws is never
 * read), the shared files are the scratch ones and do not exist, instance
 * metadata is off. */
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
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
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
    CHECK_STR(c.source, "config (aws.access_key_id)");
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
    CHECK_STR(c.source, "environment (AWS_ACCESS_KEY_ID)");
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

TEST(credentials_ini_takes_a_colon_as_the_key_separator_as_python_configparser)
{
    fresh_env();
    write_file(creds_path, "[default]\naws_access_key_id: AKIDCOLON\naws_secret_access_key : s=cret:1\n"
                           "aws_session_token=t:o=k\n");
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDCOLON");
    CHECK_STR(c.secret_access_key, "s=cret:1");
    CHECK_STR(c.session_token, "t:o=k");
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

TEST(region_that_is_not_a_region_name_is_refused_naming_where_it_came_from)
{
    fresh_env();
    write_file(config_path, "[default]\nregion = eu west 1\n");
    setenv("AWS_REGION", "evil.example/x", 1);
    char *r = NULL;
    struct ob_buf said = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_aws_region_resolve(NULL, NULL, &r, &err), OB_ERR_CONFIG);
    CHECK(r == NULL);
    CHECK_STR(err.msg, "region \"evil.example/x\" (AWS_REGION) is not a region name (letters, digits and '-')");
    CHECK_INT(ob_region_describe(NULL, NULL, &said, &err), OB_ERR_CONFIG);
    CHECK_STR(err.msg, "region \"evil.example/x\" (AWS_REGION) is not a region name (letters, digits and '-')");
    unsetenv("AWS_REGION");
    CHECK_INT(ob_aws_region_resolve(NULL, NULL, &r, &err), OB_ERR_CONFIG);
    CHECK(strstr(err.msg, "region \"eu west 1\" (profile default of "));
    CHECK_INT(ob_aws_region_resolve("us-east-1", NULL, &r, &err), OB_OK);
    free(r);
    ob_buf_free(&said);
}

/* What describe says for the options, or the error's message. */
static char *described(const struct ob_credentials_options *opt)
{
    struct ob_buf said = { 0 };
    struct ob_error err = { 0 };
    if (ob_credentials_describe(opt, &said, &err) != OB_OK)
        ob_buf_printf(&said, "error: %s", err.msg);
    return ob_buf_steal(&said);
}

#define CHECK_DESCRIBED(opt, want)                                                                            \
    do {                                                                                                      \
        char *said_ = described(opt);                                                                         \
        CHECK_STR(said_, want);                                                                               \
        free(said_);                                                                                          \
    } while (0)

TEST(chain_order_is_config_environment_web_identity_profile_container_instance_metadata)
{
    fresh_env();
    struct ob_credentials_options none = { 0 }, conf = { .access_key_id = "AKID", .secret_access_key = "s" };
    unsetenv("AWS_EC2_METADATA_DISABLED");
    CHECK_DESCRIBED(&none, "instance metadata (IMDSv2, http://169.254.169.254)");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9", 1);
    CHECK_DESCRIBED(&none, "instance metadata (IMDSv2, http://127.0.0.1:9)");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/secrets/pods.eks.amazonaws.com/token", 1);
    CHECK_DESCRIBED(&none, "container endpoint http://169.254.170.23/v1/credentials (token file "
                           "/var/run/secrets/pods.eks.amazonaws.com/token)");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    CHECK_DESCRIBED(&none, "container endpoint http://169.254.170.2/v2/credentials/abc");
    write_file(config_path, "[default]\ncredential_process = /bin/false\n");
    struct ob_buf want = { 0 };
    ob_buf_printf(&want, "credential_process (profile default of %s)", config_path);
    CHECK_DESCRIBED(&none, want.data);
    write_file(creds_path, "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n");
    ob_buf_reset(&want);
    ob_buf_printf(&want, "shared credentials file %s (profile default)", creds_path);
    CHECK_DESCRIBED(&none, want.data);
    ob_buf_free(&want);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token", 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/x", 1);
    CHECK_DESCRIBED(&none, "web identity (role arn:aws:iam::1:role/x, token file /var/run/token)");
    set_env_keys();
    CHECK_DESCRIBED(&none, "environment (AWS_ACCESS_KEY_ID)");
    CHECK_DESCRIBED(&conf, "config (aws.access_key_id)");
}

TEST(profile_role_arn_follows_source_profiles_and_refuses_loops)
{
    fresh_env();
    write_file(config_path, "[profile app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\n"
                            "[profile base]\nrole_arn = arn:aws:iam::1:role/base\nsource_profile = keys\n"
                            "[profile keys]\naws_access_key_id = AKIDKEYS\naws_secret_access_key = s\n"
                            "[profile self]\nrole_arn = arn:aws:iam::1:role/self\nsource_profile = self\n"
                            "aws_access_key_id = AKIDSELF\naws_secret_access_key = s\n"
                            "[profile loop1]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = loop2\n"
                            "[profile loop2]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = loop1\n"
                            "[profile empty]\nrole_arn = arn:aws:iam::1:role/e\nsource_profile = nothing\n");
    struct ob_credentials_options opt = { .profile = "app" };
    CHECK_DESCRIBED(&opt, "assumed role arn:aws:iam::1:role/app (profile app, source profile base)");
    opt.profile = "self";
    CHECK_DESCRIBED(&opt, "assumed role arn:aws:iam::1:role/self (profile self, source profile self)");
    opt.profile = "loop1";
    CHECK_DESCRIBED(&opt, "error: profile loop2: source_profile loop1 makes a loop");
    opt.profile = "empty";
    CHECK_DESCRIBED(&opt, "error: profile empty: its source_profile nothing has no credentials");
}

TEST(a_named_profile_in_neither_file_is_an_error_not_a_fall_through_to_another_identity)
{
    fresh_env();
    unsetenv("AWS_EC2_METADATA_DISABLED");
    write_file(creds_path, "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = s\n");
    struct ob_credentials_options none = { 0 }, typo = { .profile = "wrok" };
    struct ob_buf want = { 0 };
    ob_buf_printf(&want, "error: profile wrok (aws.profile) is in neither the shared credentials file %s nor the "
                         "config file %s", creds_path, config_path);
    CHECK_DESCRIBED(&typo, want.data);
    setenv("AWS_PROFILE", "wrok", 1);
    ob_buf_reset(&want);
    ob_buf_printf(&want, "error: profile wrok (AWS_PROFILE) is in neither the shared credentials file %s nor the "
                         "config file %s", creds_path, config_path);
    CHECK_DESCRIBED(&none, want.data);
    unsetenv("AWS_PROFILE");
    CHECK_DESCRIBED(&none, "instance metadata (IMDSv2, http://169.254.169.254)");
    ob_buf_free(&want);
}

TEST(instance_metadata_endpoint_mode_ipv6_is_its_ipv6_address_and_an_explicit_endpoint_wins)
{
    fresh_env();
    unsetenv("AWS_EC2_METADATA_DISABLED");
    struct ob_credentials_options none = { 0 };
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6", 1);
    CHECK_DESCRIBED(&none, "instance metadata (IMDSv2, http://[fd00:ec2::254])");
    struct ob_buf said = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_region_describe(NULL, NULL, &said, &err), OB_OK);
    CHECK_STR(said.data, "from instance metadata http://[fd00:ec2::254]");
    ob_buf_free(&said);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ipv4", 1);
    CHECK_DESCRIBED(&none, "instance metadata (IMDSv2, http://169.254.169.254)");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "v6", 1);
    CHECK_DESCRIBED(&none, "error: AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is \"v6\", not IPv4 or IPv6");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9", 1);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6", 1);
    CHECK_DESCRIBED(&none, "instance metadata (IMDSv2, http://127.0.0.1:9)");
}

TEST(profile_role_settings_are_checked_before_any_call)
{
    fresh_env();
    write_file(creds_path, "[both]\nrole_arn = r\nsource_profile = x\ncredential_source = Environment\n"
                           "[odd]\nrole_arn = r\ncredential_source = Ec2\n"
                           "[mfa]\nrole_arn = r\ncredential_source = Environment\nmfa_serial = arn:mfa\n"
                           "[long]\nrole_arn = r\ncredential_source = Environment\nduration_seconds = 99999\n"
                           "[bare]\nrole_arn = r\n"
                           "[env]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\n"
                           "[web]\nrole_arn = arn:aws:iam::1:role/w\nweb_identity_token_file = /t\n");
    struct ob_credentials_options opt = { .profile = "both" };
    CHECK_DESCRIBED(&opt, "error: profile both has both source_profile and credential_source");
    opt.profile = "odd";
    CHECK_DESCRIBED(&opt, "error: profile odd: credential_source Ec2 is not Environment, EcsContainer or "
                          "Ec2InstanceMetadata");
    opt.profile = "mfa";
    CHECK_DESCRIBED(&opt, "error: profile mfa: mfa_serial needs a code typed in; outboxd runs unattended");
    opt.profile = "long";
    CHECK_DESCRIBED(&opt, "error: profile long: duration_seconds \"99999\" is not a number of seconds from 900 "
                          "to 43200");
    opt.profile = "bare";
    CHECK_DESCRIBED(&opt, "error: profile bare has role_arn but no source_profile, credential_source or "
                          "web_identity_token_file");
    opt.profile = "env";
    CHECK_DESCRIBED(&opt, "error: profile env: credential_source Environment has no credentials");
    set_env_keys();
    CHECK_DESCRIBED(&opt, "assumed role arn:aws:iam::1:role/e (profile env, credential_source Environment)");
    opt.profile = "web";
    CHECK_DESCRIBED(&opt, "web identity (role arn:aws:iam::1:role/w, token file /t, profile web)");
}

TEST(container_full_uri_elsewhere_over_http_is_refused)
{
    fresh_env();
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds?secret=x", 1);
    struct ob_credentials_options opt = { 0 };
    CHECK_DESCRIBED(&opt, "error: container endpoint http://10.0.0.1/creds?*** (AWS_CONTAINER_CREDENTIALS_FULL_URI): "
                          "over http only a loopback address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23] may be "
                          "used; else https");
}

TEST(web_identity_names_the_unreadable_token_file)
{
    fresh_env();
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    struct ob_credentials_options opt = { 0 };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    CHECK_STR(err.msg, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/x", 1);
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    CHECK_STR(err.msg, "web identity (role arn:aws:iam::1:role/x, token file /nonexistent/token): cannot read "
                       "token file /nonexistent/token: No such file or directory");
}

TEST(credential_process_output_gives_keys_and_its_failure_its_first_stderr_line)
{
    fresh_env();
    write_file(config_path,
               "[profile ok]\ncredential_process = printf '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", "
               "\"SecretAccessKey\": \"s\", \"SessionToken\": \"t\", \"Expiration\": \"2030-01-01T00:00:00Z\"}'\n"
               "[profile bad]\ncredential_process = echo 'token expired' >&2; echo more >&2; exit 3\n");
    struct ob_credentials_options opt = { .profile = "ok" };
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_OK);
    CHECK_STR(c.access_key_id, "AKIDPROC");
    CHECK_STR(c.session_token, "t");
    CHECK_INT(c.expires_at, 1893456000);
    ob_aws_credentials_free(&c);
    opt.profile = "bad";
    CHECK_INT(ob_credentials_resolve(&opt, &c, &err), OB_ERR_CREDENTIALS);
    struct ob_buf want = { 0 };
    ob_buf_printf(&want, "credential_process (profile bad of %s): credential_process exited with status 3: token "
                         "expired", config_path);
    CHECK_STR(err.msg, want.data);
    ob_buf_free(&want);
}

TEST(region_describe_says_where_it_comes_from_and_ends_at_instance_metadata)
{
    fresh_env();
    struct ob_buf said = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_region_describe("eu-west-1", NULL, &said, &err), OB_OK);
    CHECK_STR(said.data, "eu-west-1 (aws.region)");
    ob_buf_reset(&said);
    setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
    CHECK_INT(ob_region_describe(NULL, NULL, &said, &err), OB_OK);
    CHECK_STR(said.data, "us-east-2 (AWS_DEFAULT_REGION)");
    ob_buf_reset(&said);
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    CHECK_INT(ob_region_describe(NULL, NULL, &said, &err), OB_OK);
    CHECK_STR(said.data, "from instance metadata http://169.254.169.254");
    ob_buf_free(&said);
}

/* Whether process pid is gone (or a zombie no one has reaped yet), waiting
 * up to two seconds for it. */
static bool process_gone(pid_t pid)
{
    for (int i = 0; i < 200; i++) {
        char path[64], stat[256] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        bool read = fgets(stat, sizeof stat, f) != NULL;
        fclose(f);
        const char *state = strrchr(stat, ')');
        if (read && state && state[1] == ' ' && state[2] == 'Z')
            return true;
        usleep(10000);
    }
    return false;
}

TEST(credential_process_that_closes_its_output_and_runs_on_is_killed_at_the_timeout)
{
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    int64_t started = ob_mono_ms();
    CHECK_INT(ob_credential_process_run("exec >/dev/null 2>&1; sleep 30", 1000, "p", &c, &err), OB_ERR_CREDENTIALS);
    CHECK(ob_mono_ms() - started < 10000);
    CHECK_STR(err.msg, "p: credential_process did not finish within 1 s");
}

TEST(credential_process_timed_out_leaves_none_of_its_children_running)
{
    char pid_path[sizeof scratch + 32], command[200];
    fresh_env();
    snprintf(pid_path, sizeof pid_path, "%s/pid", scratch);
    snprintf(command, sizeof command, "sh -c 'echo $$ > %s; exec sleep 30'; true", pid_path);
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credential_process_run(command, 1000, "p", &c, &err), OB_ERR_CREDENTIALS);
    FILE *f = fopen(pid_path, "r");
    int pid = 0;
    CHECK(f && fscanf(f, "%d", &pid) == 1);
    if (f)
        fclose(f);
    unlink(pid_path);
    CHECK(pid > 0 && process_gone(pid));
    if (pid > 0)
        kill(pid, SIGKILL);
}

TEST(credential_process_runs_with_default_signals_whatever_the_caller_blocks_or_ignores)
{
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &old);
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK_INT(ob_credential_process_run("grep -E '^Sig(Blk|Ign)' /proc/$$/status | tr '\\n' ' ' >&2; exit 1", 5000,
                                        "p", &c, &err),
              OB_ERR_CREDENTIALS);
    /* Signals 1 to 31; above are the C library's own. */
    unsigned long long blocked = 1, ignored = 1;
    CHECK(sscanf(err.msg, "p: credential_process exited with status 1: SigBlk: %llx SigIgn: %llx", &blocked,
                 &ignored) == 2);
    CHECK_INT(blocked & 0x7fffffff, 0);
    CHECK_INT(ignored & 0x7fffffff, 0);
    signal(SIGPIPE, was);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

TEST(credential_process_inherits_no_descriptor_but_its_standard_three)
{
    int fd = open("/dev/null", O_RDONLY); /* as a library's socket without FD_CLOEXEC */
    char command[200];
    snprintf(command, sizeof command, "if [ -e /proc/$$/fd/%d ]; then echo 'fd %d inherited' >&2; exit 1; fi; "
             "printf '{\"Version\": 1, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"S\"}'", fd, fd);
    struct ob_aws_credentials c;
    struct ob_error err = { 0 };
    CHECK(fd > 2);
    enum ob_err rc = ob_credential_process_run(command, 5000, "p", &c, &err);
    CHECK_STR(err.msg, "");
    CHECK_INT(rc, OB_OK);
    if (!rc)
        ob_aws_credentials_free(&c);
    close(fd);
}

TEST(token_file_that_never_ends_is_refused_past_its_size_limit)
{
    struct ob_buf token = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_cred_token_file_read("/dev/zero", "p", &token, &err), OB_ERR_CREDENTIALS);
    CHECK_STR(err.msg, "p: token file /dev/zero is larger than 64 KiB");
    ob_buf_free(&token);
}
