/*
 * validate_prim: the lexical rules of FHIR primitive types (the datatypes
 * page regexes, as code) and the limits on primitive values: minValue[x],
 * maxValue[x], maxLength, and minValue/maxValue on Quantities.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fdate.h"
#include "fdecimal.h"
#include "ucum.h"
#include "validate_impl.h"

/* ---- primitive formats (FHIR R4/STU3 datatypes page regexes) ---- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

static int
num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool
leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

const char *
v_expected_form(const char *type)
{
	if (strcmp(type, "date") == 0)
		return "; expected YYYY, YYYY-MM or YYYY-MM-DD, e.g. "
		       "2026-12-05";
	if (strcmp(type, "dateTime") == 0)
		return "; expected YYYY, YYYY-MM, YYYY-MM-DD or "
		       "YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm, e.g. "
		       "2026-12-05T08:30:00+01:00";
	if (strcmp(type, "instant") == 0)
		return "; expected YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm, "
		       "e.g. 2026-12-05T08:30:00Z";
	if (strcmp(type, "time") == 0)
		return "; expected hh:mm:ss[.fff], e.g. 08:30:00";
	return "";
}

/* YYYY, YYYY-MM or YYYY-MM-DD at s; *used is the length consumed. */
static const char *
check_date_part(const char *s, size_t len, size_t *used, bool full)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (len < 4 || !digits(s, 4))
		return "the year must be four digits";
	y = num2(s) * 100 + num2(s + 2);
	if (y == 0)
		return "year 0000 is not allowed";
	if (len == 4 || s[4] != '-') {
		*used = 4;
		return full ? "a full date (YYYY-MM-DD) is required" : NULL;
	}
	if (len < 7 || !digits(s + 5, 2))
		return "the month must be two digits";
	m = num2(s + 5);
	if (m < 1 || m > 12)
		return "the month is out of range";
	if (len == 7 || s[7] != '-') {
		*used = 7;
		return full ? "a full date (YYYY-MM-DD) is required" : NULL;
	}
	if (len < 10 || !digits(s + 8, 2))
		return "the day must be two digits";
	d = num2(s + 8);
	if (d < 1 || d > mdays[m - 1] + (m == 2 && leap_year(y) ? 1 : 0))
		return "the day does not exist in that month";
	*used = 10;
	return NULL;
}

/* hh:mm:ss(.fff)? at s; *used is the length consumed. */
static const char *
check_time_part(const char *s, size_t len, size_t *used)
{
	size_t i;

	if (len < 8 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) ||
	    s[5] != ':' || !digits(s + 6, 2))
		return "the time must be hh:mm:ss";
	if (num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 60)
		return "the time is out of range";
	i = 8;
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return "a fraction of a second needs digits";
		while (i < len && is_digit(s[i]))
			i++;
	}
	*used = i;
	return NULL;
}

static const char *
check_tz(const char *s, size_t len)
{
	if (len == 1 && s[0] == 'Z')
		return NULL;
	if (len == 6 && (s[0] == '+' || s[0] == '-') && digits(s + 1, 2) &&
	    s[3] == ':' && digits(s + 4, 2)) {
		int h = num2(s + 1), m = num2(s + 4);

		if (m > 59 || h > 14 || (h == 14 && m != 0))
			return "the time zone offset is out of range";
		return NULL;
	}
	return "a time needs a time zone (Z or +hh:mm)";
}

static const char *
check_datetime(const char *s, size_t len, bool instant)
{
	size_t used = 0, tused = 0;
	const char *why = check_date_part(s, len, &used, instant);

	if (why != NULL)
		return why;
	if (used == len)
		return instant ? "an instant needs a time and time zone" : NULL;
	if (used != 10 || s[used] != 'T')
		return "unexpected characters after the date";
	s += 11;
	len -= 11;
	if ((why = check_time_part(s, len, &tused)) != NULL)
		return why;
	return check_tz(s + tused, len - tused);
}

bool
v_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *
v_check_base64(const char *s, size_t len)
{
	size_t n = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (v_is_ws(c))
			continue;
		if (c == '=') {
			pad++;
			n++;
			continue;
		}
		if (pad > 0)
			return "data after base64 padding";
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      is_digit(c) || c == '+' || c == '/'))
			return "not a valid base64 character";
		n++;
	}
	if (n % 4 != 0 || pad > 2)
		return "base64 length is not a multiple of 4";
	return NULL;
}

/* Parse a JSON integer text; false when it has a fraction/exponent or
 * does not fit. */
static bool
parse_int_text(const char *s, size_t len, long long *out)
{
	long long v = 0;
	size_t i = 0;
	bool neg = false;

	if (len > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i >= len || len - i > 12)
		return false;
	for (; i < len; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

const char *
validate_primitive(const char *type, const char *s, size_t len, bool is_string)
{
	long long v;
	size_t used;

	/* Each name is looked at only when its first letter fits: this
	 * runs for every primitive value of a document. */
	if (type[0] == 'h' &&
	    strncmp(type, "http://hl7.org/fhirpath/System.", 31) == 0) {
		type += 31;
		if (strcmp(type, "String") == 0)
			type = "string";
		else if (strcmp(type, "Boolean") == 0)
			type = "boolean";
		else if (strcmp(type, "Integer") == 0)
			type = "integer";
		else if (strcmp(type, "Decimal") == 0)
			type = "decimal";
		else if (strcmp(type, "Date") == 0)
			type = "date";
		else if (strcmp(type, "DateTime") == 0)
			type = "dateTime";
		else if (strcmp(type, "Time") == 0)
			type = "time";
		else
			type = "string";
	}
	if (type[0] == 'b' && strcmp(type, "boolean") == 0)
		return NULL; /* the JSON type says it all */
	if ((type[0] == 'i' && strcmp(type, "integer") == 0) ||
	    (type[0] == 'p' && strcmp(type, "positiveInt") == 0) ||
	    (type[0] == 'u' && strcmp(type, "unsignedInt") == 0)) {
		if (is_string)
			return "an integer must be a JSON number";
		if (!parse_int_text(s, len, &v))
			return "not an integer";
		if (v < -2147483648LL || v > 2147483647LL)
			return "the integer is out of range";
		if (type[0] == 'p' && v < 1)
			return "a positiveInt must be at least 1";
		if (type[0] == 'u' && v < 0)
			return "an unsignedInt must not be negative";
		return NULL;
	}
	if (type[0] == 'd' && strcmp(type, "decimal") == 0)
		return is_string ? "a decimal must be a JSON number" : NULL;
	if (!is_string)
		return "the value must be a JSON string";
	if (len == 0)
		return "a primitive value must not be empty";
	if (strlen(s) != len)
		return "the value contains a NUL character";
	switch (type[0]) {
	case 'b':
		if (strcmp(type, "base64Binary") == 0)
			return v_check_base64(s, len);
		break;
	case 'c':
		if (strcmp(type, "code") == 0) {
			if (v_is_ws(s[0]) || v_is_ws(s[len - 1]))
				return "a code must not start or end with "
				       "whitespace";
			for (size_t i = 1; i < len; i++)
				if (v_is_ws(s[i]) && v_is_ws(s[i - 1]))
					return "a code must not contain "
					       "repeated whitespace";
			return NULL;
		}
		if (strcmp(type, "canonical") == 0)
			goto uri;
		break;
	case 'd':
		if (strcmp(type, "date") == 0) {
			const char *why = check_date_part(s, len, &used, false);

			if (why == NULL && used != len)
				why = "unexpected characters after the date";
			return why;
		}
		if (strcmp(type, "dateTime") == 0)
			return check_datetime(s, len, false);
		break;
	case 'i':
		if (strcmp(type, "id") == 0) {
			if (len > 64)
				return "an id is at most 64 characters";
			for (size_t i = 0; i < len; i++)
				if (!((s[i] >= 'A' && s[i] <= 'Z') ||
				      (s[i] >= 'a' && s[i] <= 'z') ||
				      is_digit(s[i]) || s[i] == '-' ||
				      s[i] == '.'))
					return "an id may only contain "
					       "A-Z, a-z, 0-9, '-' and '.'";
			return NULL;
		}
		if (strcmp(type, "instant") == 0)
			return check_datetime(s, len, true);
		break;
	case 'o':
		if (strcmp(type, "oid") == 0) {
			size_t i = 8;

			if (len < 10 || strncmp(s, "urn:oid:", 8) != 0 ||
			    s[8] < '0' || s[8] > '2')
				return "an oid must be urn:oid:[0-2](.n)+";
			i = 9;
			if (i >= len)
				return "an oid must be urn:oid:[0-2](.n)+";
			while (i < len) {
				size_t st;

				if (s[i] != '.')
					return "an oid must be "
					       "urn:oid:[0-2](.n)+";
				st = ++i;
				while (i < len && is_digit(s[i]))
					i++;
				if (i == st || (s[st] == '0' && i - st > 1))
					return "an oid must be "
					       "urn:oid:[0-2](.n)+";
			}
			return NULL;
		}
		break;
	case 't':
		if (strcmp(type, "time") == 0) {
			const char *why = check_time_part(s, len, &used);

			if (why == NULL && used != len)
				why = "unexpected characters after the time";
			return why;
		}
		break;
	case 'u':
		if (strcmp(type, "uuid") == 0) {
			if (len != 45 || strncmp(s, "urn:uuid:", 9) != 0)
				return "a uuid must be urn:uuid: and 36 "
				       "lower-case hex characters";
			for (size_t i = 9; i < len; i++) {
				size_t k = i - 9;
				bool dash =
				    k == 8 || k == 13 || k == 18 || k == 23;

				if (dash ? s[i] != '-'
					 : !(is_digit(s[i]) ||
					     (s[i] >= 'a' && s[i] <= 'f')))
					return "a uuid must be urn:uuid: and "
					       "36 lower-case hex characters";
			}
			return NULL;
		}
		if (strcmp(type, "uri") == 0 || strcmp(type, "url") == 0)
			goto uri;
		break;
	case 'x':
		if (strcmp(type, "xhtml") == 0) {
			if (len < 5 || strncmp(s, "<div", 4) != 0)
				return "narrative must be a <div> element";
			return NULL;
		}
		break;
	default:
		break;
	}
	/* string, markdown and anything else: any non-empty text; the
	 * regex [ \r\n\t\S]+ excludes nothing else. */
	return NULL;
uri:
	for (size_t i = 0; i < len; i++)
		if (v_is_ws(s[i]))
			return "a URI must not contain whitespace";
	return NULL;
}

bool
v_only_whitespace(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!v_is_ws(s[i]))
			return false;
	return true;
}

/* ---- minValue / maxValue / maxLength ---- */

/*
 * Compare value text v (of the instance) with limit node lim (a
 * minValue[x]/maxValue[x] member; its key names the type). Returns false
 * when the two cannot be compared; else *cmp is -1, 0 or 1.
 */
static bool
limit_cmp(const struct fj_node *lim, const char *type, const char *v,
	  size_t vlen, int *cmp)
{
	const char *t = lim->keylen > 8 ? lim->key + 8 : "";
	const char *ls = lim->u.str.s;

	if (lim->type != FJ_STRING && lim->type != FJ_NUMBER)
		return false;
	if (strcmp(t, "Integer") == 0 || strcmp(t, "PositiveInt") == 0 ||
	    strcmp(t, "UnsignedInt") == 0 || strcmp(t, "Integer64") == 0 ||
	    strcmp(t, "Decimal") == 0) {
		if (strcmp(type, "integer") != 0 &&
		    strcmp(type, "decimal") != 0 &&
		    strcmp(type, "positiveInt") != 0 &&
		    strcmp(type, "unsignedInt") != 0)
			return false;
		return fdec_cmp_text(v, vlen, ls, lim->u.str.len, FDEC_DOUBLE,
				     cmp);
	}
	if (strcmp(t, "Date") == 0 || strcmp(t, "DateTime") == 0 ||
	    strcmp(t, "Instant") == 0) {
		struct fdate a, b;

		if (strcmp(type, "date") != 0 &&
		    strcmp(type, "dateTime") != 0 &&
		    strcmp(type, "instant") != 0)
			return false;
		if (!fdate_parse(v, vlen, FDATE_DATETIME, &a) ||
		    !fdate_parse(ls, lim->u.str.len, FDATE_DATETIME, &b))
			return false;
		*cmp = fdate_cmp_limit(&a, &b);
		return true;
	}
	if (strcmp(t, "Time") == 0 && strcmp(type, "time") == 0) {
		int c = strcmp(v, ls);

		*cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
		return true;
	}
	return false;
}

/* Number of characters (not bytes) of UTF-8 text. */
static size_t
utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0u) != 0x80u)
			n++;
	return n;
}

#define UCUM_SYSTEM "http://unitsofmeasure.org"

/*
 * A Duration limit (minValueQuantity/maxValueQuantity) on a date,
 * dateTime or instant: the value must not lie before now - duration
 * (minimum) or after now + duration (maximum) (FHIR R4
 * ElementDefinition.minValue[x]). The duration is converted to seconds
 * with ucum; a unit that does not convert is a warning. A value is out
 * of range only when all of it is (2026 is the whole year).
 */
static void
check_duration_limit(struct vrun *r, const struct rules_element *el,
		     const struct fj_node *lim, bool is_min,
		     const struct fj_node *v)
{
	const struct fj_node *lv = fj_get(lim, "value");
	const char *code = fj_get_str(lim, "code");
	struct fdate d;
	double secs;
	int64_t lo, hi, now, bound;

	if (lv == NULL || lv->type != FJ_NUMBER || code == NULL) {
		v_issue(r, FHIR_WARNING, "not-supported", v,
			"%s of %s has no value and unit code to compare a "
			"date with",
			lim->key, el->id);
		return;
	}
	if (ucum_convert(strtod(lv->u.str.s, NULL), code, "s", &secs) !=
		GW_OK ||
	    !isfinite(secs) || fabs(secs) > 1e12) {
		v_issue(r, FHIR_WARNING, "not-supported", v,
			"%s of %s is in unit '%.40s', which is not a time "
			"unit that can be converted: not compared",
			lim->key, el->id, code);
		return;
	}
	if (!fdate_parse(v->u.str.s, v->u.str.len, FDATE_DATETIME, &d) ||
	    !fdate_range_ms(&d, &lo, &hi))
		return;
	now = (int64_t)time(NULL) * 1000;
	bound = is_min ? now - (int64_t)(secs * 1000)
		       : now + (int64_t)(secs * 1000);
	if (is_min ? hi <= bound : lo > bound)
		v_issue(r, FHIR_ERROR, "value", v,
			"the value %.60s is %s the %s of %s (%s %.40s %.20s "
			"%s now)",
			v->u.str.s, is_min ? "before" : "after", lim->key,
			el->id, is_min ? "no earlier than" : "no later than",
			lv->u.str.s, code, is_min ? "before" : "after");
}

/* Check the limits of one element definition el on a valid primitive. */
static void
check_limits_el(struct vrun *r, const struct rules_element *el,
		const char *type, const struct fj_node *v)
{
	const struct fj_node *lims[2] = {el->min_value, el->max_value};
	int cmp;

	/* a value of at most max_length bytes has at most as many
	 * characters: counting them is needed only above that (every
	 * string has the R4 limit of 1 MiB characters) */
	if (el->max_length > 0 && v->type == FJ_STRING &&
	    v->u.str.len > el->max_length && strcmp(type, "boolean") != 0) {
		size_t n = utf8_chars(v->u.str.s, v->u.str.len);

		if (n > el->max_length)
			v_issue(r, FHIR_ERROR, "value", v,
				"the value is %zu characters long, more than "
				"the maxLength %u of %s",
				n, (unsigned)el->max_length, el->id);
	}
	for (int i = 0; i < 2; i++) {
		const struct fj_node *lim = lims[i];

		if (lim == NULL)
			continue;
		if (lim->type == FJ_OBJECT && lim->keylen > 8 &&
		    strcmp(lim->key + 8, "Quantity") == 0 &&
		    (strcmp(type, "date") == 0 ||
		     strcmp(type, "dateTime") == 0 ||
		     strcmp(type, "instant") == 0)) {
			check_duration_limit(r, el, lim, i == 0, v);
			continue;
		}
		if (!limit_cmp(lim, type, v->u.str.s, v->u.str.len, &cmp)) {
			v_issue(r, FHIR_INFORMATION, "not-supported", v,
				"%s of %s cannot be compared with a %s",
				lim->key, el->id, type);
			continue;
		}
		if ((i == 0 && cmp < 0) || (i == 1 && cmp > 0))
			v_issue(r, FHIR_ERROR, "value", v,
				"the value %.60s is %s the %s %.60s of %s",
				v->u.str.s, i == 0 ? "below" : "above",
				lim->key, lim->u.str.s, el->id);
	}
}

/* minValue/maxValue/maxLength of a primitive value: on its element, on
 * the element's "value" child (profiles put maxLength there) and on the
 * primitive type's own value element. */
static bool
has_limits(const struct rules_element *el)
{
	return el->max_length > 0 || el->min_value != NULL ||
	       el->max_value != NULL;
}

void
v_check_limits(struct vrun *r, const struct vnode *d, const struct vtype *ti,
	       const char *type, const struct fj_node *v)
{
	struct vnode *w = (struct vnode *)d; /* the tree is the context's */

	/* which elements have limits is known per element and type: found
	 * once, not by looking up "value" children at every value */
	if (w->lim_ti != ti) {
		const struct vnode *kd = v_kids_of(d), *vk;
		const char *dummy;

		w->nlim = 0;
		if (has_limits(d->el))
			w->lim[w->nlim++] = d->el;
		if (kd->nkids > 0 &&
		    (vk = v_find_kid(kd->kids, kd->nkids, "value", &dummy)) !=
			NULL &&
		    has_limits(vk->el))
			w->lim[w->nlim++] = vk->el;
		if (ti->vs != NULL && ti->vs->root != NULL &&
		    (vk = v_find_kid(ti->vs->root->kids, ti->vs->root->nkids,
				     "value", &dummy)) != NULL &&
		    vk->el->max_length > 0)
			w->lim[w->nlim++] = vk->el;
		w->lim_ti = ti;
	}
	for (unsigned i = 0; i < w->nlim; i++)
		check_limits_el(r, w->lim[i], type, v);
}

/* Equal within rounding: a converted value (1 [lb_av] in g) must meet
 * a limit written as its exact figure. */
static int
cmp_converted(double a, double b)
{
	double tol = 1e-9 * fmax(fabs(a), fabs(b));

	return a < b - tol ? -1 : a > b + tol ? 1 : 0;
}

/* minValueQuantity/maxValueQuantity on a Quantity: compared as written
 * when the units agree, else after UCUM conversion (ucum.c: mass,
 * length, volume, time, amount, temperature); a unit that cannot be
 * converted is a warning, as the HL7 validator gives, not silence. */
void
v_check_quantity_limits(struct vrun *r, const struct rules_element *el,
			const struct fj_node *v)
{
	const struct fj_node *lims[2] = {el->min_value, el->max_value};
	const struct fj_node *val = fj_get(v, "value");

	if (val == NULL || val->type != FJ_NUMBER)
		return;
	for (int i = 0; i < 2; i++) {
		const struct fj_node *lim = lims[i], *lv;
		const char *lc, *ls, *ic, *is;
		int cmp;

		if (lim == NULL)
			continue;
		if (lim->type != FJ_OBJECT ||
		    (lv = fj_get(lim, "value")) == NULL ||
		    lv->type != FJ_NUMBER) {
			v_issue(r, FHIR_INFORMATION, "not-supported", v,
				"%s of %s cannot be compared with a Quantity",
				lim->key, el->id);
			continue;
		}
		lc = fj_get_str(lim, "code");
		ls = fj_get_str(lim, "system");
		ic = fj_get_str(v, "code");
		is = fj_get_str(v, "system");
		if ((lc != NULL && (ic == NULL || strcmp(lc, ic) != 0)) ||
		    (ls != NULL && is != NULL && strcmp(ls, is) != 0)) {
			double conv;

			if (lc == NULL || ic == NULL || is == NULL ||
			    strcmp(is, UCUM_SYSTEM) != 0 ||
			    (ls != NULL && strcmp(ls, UCUM_SYSTEM) != 0) ||
			    ucum_convert(strtod(val->u.str.s, NULL), ic, lc,
					 &conv) != GW_OK ||
			    !isfinite(conv)) {
				v_issue(r, FHIR_WARNING, "not-supported", v,
					"%s of %s is in unit '%.40s': the "
					"value's unit '%.40s' cannot be "
					"converted to it, so the limit was "
					"not checked",
					lim->key, el->id, lc ? lc : "(none)",
					ic ? ic : "(none)");
				continue;
			}
			cmp = cmp_converted(conv, strtod(lv->u.str.s, NULL));
			if ((i == 0 && cmp < 0) || (i == 1 && cmp > 0))
				v_issue(r, FHIR_ERROR, "value", val,
					"the quantity %.40s %.40s (%.6g %.40s) "
					"is %s the %s %.40s %.40s of %s",
					val->u.str.s, ic, conv, lc,
					i == 0 ? "below" : "above", lim->key,
					lv->u.str.s, lc, el->id);
			continue;
		}
		/* FDEC_DOUBLE always compares (as strtod reads the texts) */
		if (!fdec_cmp_text(val->u.str.s, val->u.str.len, lv->u.str.s,
				   lv->u.str.len, FDEC_DOUBLE, &cmp))
			continue;
		if ((i == 0 && cmp < 0) || (i == 1 && cmp > 0))
			v_issue(r, FHIR_ERROR, "value", val,
				"the quantity %.40s is %s the %s %.40s of %s",
				val->u.str.s, i == 0 ? "below" : "above",
				lim->key, lv->u.str.s, el->id);
	}
}
