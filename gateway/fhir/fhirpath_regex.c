/*
 * fhirpath_regex: FHIRPath regular expressions translated into POSIX ERE
 * and compiled; constructs POSIX lacks are refused with a reason.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "fhirpath_impl.h"

/* ---------------------------------------------------------------- regex */

/*
 * Translate a FHIRPath (Perl-flavoured) regular expression into POSIX ERE:
 * \d \D \s \S \w \W become classes, other escapes become the literal
 * character, bracket expressions are rebuilt so that ] and - sit where
 * POSIX wants them. Returns false (and a reason) for constructs POSIX
 * lacks: lazy quantifiers, look-around, inline flags, back-references.
 */
static bool
regex_translate(const char *re, size_t n, struct buf *out, const char **why)
{
	size_t i = 0;

	while (i < n) {
		char c = re[i];

		if (c == '\\') {
			char e;

			if (++i >= n) {
				*why = "trailing backslash";
				return false;
			}
			e = re[i++];
			switch (e) {
			case 'd':
				buf_adds(out, "[0-9]");
				break;
			case 'D':
				buf_adds(out, "[^0-9]");
				break;
			case 's':
				buf_adds(out, "[[:space:]]");
				break;
			case 'S':
				buf_adds(out, "[^[:space:]]");
				break;
			case 'w':
				buf_adds(out, "[A-Za-z0-9_]");
				break;
			case 'W':
				buf_adds(out, "[^A-Za-z0-9_]");
				break;
			case 'n':
				buf_addc(out, '\n');
				break;
			case 't':
				buf_addc(out, '\t');
				break;
			case 'r':
				buf_addc(out, '\r');
				break;
			default:
				if (isalnum((unsigned char)e)) {
					*why = "unsupported escape";
					return false;
				}
				if (strchr(".[]()*+?{}|^$\\", e))
					buf_addc(out, '\\');
				buf_addc(out, e);
			}
		} else if (c == '[') {
			/* collect the set, then emit it in POSIX order */
			bool neg = false, rbrack = false, dash = false,
			     caret = false, lbrack = false;
			struct buf set;

			buf_init(&set, n * 16 + 16);
			i++;
			if (i < n && re[i] == '^') {
				neg = true;
				i++;
			}
			if (i < n && re[i] == ']') {
				rbrack = true; /* literal when first */
				i++;
			}
			while (i < n && re[i] != ']') {
				char a = re[i++];

				if (a == '\\' && i < n) {
					char e = re[i++];

					if (e == 'd')
						buf_adds(&set, "0-9");
					else if (e == 's')
						buf_adds(&set, "[:space:]");
					else if (e == 'w')
						buf_adds(&set, "A-Za-z0-9_");
					else if (e == 'n')
						buf_addc(&set, '\n');
					else if (e == 't')
						buf_addc(&set, '\t');
					else if (e == 'r')
						buf_addc(&set, '\r');
					else if (e == ']')
						rbrack = true;
					else if (e == '-')
						dash = true;
					else if (e == '^')
						caret = true;
					else if (e == '[')
						lbrack = true;
					else if (isalnum((unsigned char)e)) {
						buf_cleanup(&set);
						*why = "unsupported escape in "
						       "a set";
						return false;
					} else
						buf_addc(&set, e);
				} else if (a == '[' && i < n && re[i] == ':') {
					const char *e = strstr(re + i, ":]");

					if (!e || (size_t)(e - re) >= n) {
						buf_cleanup(&set);
						*why = "bad class";
						return false;
					}
					buf_addc(&set, '[');
					buf_add(&set, re + i,
						(size_t)(e - re) + 2 - i);
					i = (size_t)(e - re) + 2;
				} else if (a == '-' &&
					   (set.len == 0 || i >= n ||
					    re[i] == ']')) {
					dash = true;
				} else if (a == '^') {
					caret = true;
				} else if (a == '[') {
					/* literal: never before . : = */
					lbrack = true;
				} else {
					buf_addc(&set, a);
				}
			}
			if (i >= n) {
				buf_cleanup(&set);
				*why = "unterminated [";
				return false;
			}
			i++; /* ] */
			buf_addc(out, '[');
			if (neg)
				buf_addc(out, '^');
			if (rbrack)
				buf_addc(out, ']');
			if (set.len)
				buf_add(out, set.data, set.len);
			if (lbrack)
				buf_addc(out, '[');
			if (caret)
				buf_addc(out, '^');
			if (dash)
				buf_addc(out, '-');
			if (!rbrack && !set.len && !caret && !dash && !lbrack) {
				buf_cleanup(&set);
				*why = "empty set";
				return false;
			}
			buf_addc(out, ']');
			buf_cleanup(&set);
		} else if (c == '(' && i + 1 < n && re[i + 1] == '?') {
			*why = "(? groups";
			return false;
		} else if ((c == '?' || c == '+') && i > 0 &&
			   strchr("*+?}", re[i - 1]) &&
			   (i < 2 || re[i - 2] != '\\')) {
			*why = "lazy or possessive quantifier";
			return false;
		} else {
			buf_addc(out, c);
			i++;
		}
	}
	return out->data != NULL || n == 0;
}

/* Compile a FHIRPath regex into *re (caller regfree()s on success). */
enum gw_err
fp_regex_compile(const char *pat, size_t n, regex_t *re, char *why,
		 size_t whylen)
{
	struct buf b;
	const char *reason = "bad pattern";
	enum gw_err e = GW_OK;

	buf_init(&b, n * 16 + 64);
	if (!regex_translate(pat, n, &b, &reason) || buf_addc(&b, '\0')) {
		snprintf(why, whylen, "unsupported regular expression (%s)",
			 reason);
		e = GW_INVALID;
		goto out;
	}
	if (regcomp(re, b.data, REG_EXTENDED) != 0) {
		snprintf(why, whylen, "invalid regular expression");
		e = GW_INVALID;
	}
out:
	buf_cleanup(&b);
	return e;
}
