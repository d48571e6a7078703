/* Just enough XML for the AWS query protocol's answers: the text of
 * an element found by name, and the elements of a list one after another.
 * Not a parser: no attributes are read, no namespaces resolved, no DTDs;
 * what it finds in a malformed document it finds, nothing more. Pure. */
#ifndef OB_CORE_XML_SCAN_H
#define OB_CORE_XML_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

struct ob_xml_span {
    const char *p;
    size_t len;
};

/* The next element named tag (a prefix "ns:" on the name is ignored)
 * that starts at or after *pos in xml: its content in *inner (empty for
 * <tag/>), and *pos moved past its end tag. false when there is none or it
 * is not closed. Elements of the same name nested in it are skipped over. */
bool ob_xml_next(struct ob_xml_span xml, size_t *pos, const char *tag, struct ob_xml_span *inner);

/* The text of the first element named tag in xml, with the five named
 * entities and numeric character references decoded, appended to out.
 * false when there is none (out unchanged). */
bool ob_xml_text(struct ob_xml_span xml, const char *tag, struct ob_buf *out);

#endif
