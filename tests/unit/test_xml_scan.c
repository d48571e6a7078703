/* The XML the query protocol answers: elements found by name, lists walked. */
#include "test.h"

#include <string.h>

#include "core/xml_scan.h"

static struct ob_xml_span span(const char *s)
{
    return (struct ob_xml_span){ s, strlen(s) };
}

TEST(the_text_of_an_element_is_found_by_name_with_entities_decoded)
{
    struct ob_buf b = { 0 };
    CHECK(ob_xml_text(span("<a><Code>X</Code><Message>a &lt;b&gt; &amp; &#233;&#x41;</Message></a>"), "Message", &b));
    CHECK_STR(ob_buf_cstr(&b), "a <b> & \xc3\xa9" "A");
    ob_buf_free(&b);
}

TEST(a_missing_element_is_not_found_and_leaves_the_output_alone)
{
    struct ob_buf b = { 0 };
    CHECK(!ob_xml_text(span("<a><Code>X</Code></a>"), "Message", &b));
    CHECK(!ob_xml_text(span("<a><Message>never closed</a>"), "Message", &b));
    CHECK_INT((int)b.len, 0);
    ob_buf_free(&b);
}

TEST(a_namespace_prefix_is_ignored_and_a_longer_name_is_another_element)
{
    struct ob_buf b = { 0 };
    CHECK(ob_xml_text(span("<CodeX>no</CodeX><sns:Code>yes</sns:Code>"), "Code", &b));
    CHECK_STR(ob_buf_cstr(&b), "yes");
    ob_buf_free(&b);
}

TEST(list_members_are_walked_in_order_with_nested_ones_inside)
{
    const char *doc = "<R><Successful><member><Id>0</Id></member><member><Id>1</Id><member>in</member></member>"
                      "<member/></Successful><Failed></Failed></R>";
    struct ob_xml_span list, m;
    size_t pos = 0;
    CHECK(ob_xml_next(span(doc), &pos, "Successful", &list));
    pos = 0;
    struct ob_buf ids = { 0 };
    int n = 0;
    while (ob_xml_next(list, &pos, "member", &m)) {
        ob_xml_text(m, "Id", &ids);
        n++;
    }
    CHECK_INT(n, 3);
    CHECK_STR(ob_buf_cstr(&ids), "01");
    pos = 0;
    CHECK(ob_xml_next(span(doc), &pos, "Failed", &list));
    CHECK_INT((int)list.len, 0);
    ob_buf_free(&ids);
}
